"""``t2igan convert dfgan|damsm|ssagan|attngan|mirrorgan OFFICIAL.pth [--captions captions.pickle] -o RUN_DIR``:
official checkpoints -> t2igan run folders (key layouts: :mod:`t2igan.convert`, one module per
official code base). Every file is read with ``torch.load(weights_only=True)``.

``t2igan convert inception-cub model.ckpt [-o FOLDER]``: StackGAN's CUB-fine-tuned Inception (a TensorFlow
checkpoint, read without TensorFlow) -> ``FOLDER/inception_cub-<sha256[:8]>.safetensors`` (default FOLDER:
the cache folder ``eval --is-network cub`` searches); see :mod:`t2igan.convert.inception_cub`."""

from __future__ import annotations

HELP = "convert an official checkpoint to a run folder (inception-cub: to an IS weights file)"

FAMILIES = ("dfgan", "damsm", "ssagan", "attngan", "mirrorgan", "inception-cub")


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=FAMILIES, help="which official model the file holds")
    parser.add_argument("checkpoint", help="dfgan: state_epoch_N.pth (netG/netD/netC); damsm: text_encoder*.pth; "
                                           "ssagan: netG_XXX.pth; attngan, mirrorgan: netG_epoch_N.pth; "
                                           "inception-cub: StackGAN's birds_valid299/model.ckpt (TensorFlow)")
    parser.add_argument("-o", "--output", help="run folder to write (inception-cub: the folder for the weights "
                                               "file, default the cache folder)")
    parser.add_argument("--captions", help="AttnGAN/DF-GAN captions.pickle of the data set (the vocabulary)")
    parser.add_argument("--vocab", help="a t2igan vocab.json instead of --captions")
    parser.add_argument("--text-encoder", help="dfgan, ssagan, attngan, mirrorgan: the DAMSM text_encoder*.pth it was trained with")
    parser.add_argument("--discriminator", nargs="+", default=[],
                        help="ssagan: netD_XXX.pth; attngan, mirrorgan: netD0.pth netD1.pth netD2.pth (stage order)")
    parser.add_argument("--image-encoder", help="damsm: the image_encoder*.pth saved with the text encoder")
    parser.add_argument("--max-words", type=int, default=18, help="longest caption in tokens (CUB 18, COCO 12)")


def run(args) -> None:
    from pathlib import Path

    from ..convert.attngan import convert_attngan, convert_damsm
    from ..convert.dfgan import convert_dfgan
    from ..convert.mirrorgan import convert_mirrorgan
    from ..convert.ssagan import convert_ssagan
    from ..errors import T2IError
    from ..runs import holds_run

    if args.what == "inception-cub":
        from ..convert.inception_cub import convert_inception_cub, describe

        out = convert_inception_cub(args.checkpoint, args.output)
        print(f"CUB Inception {describe(out)}: {out}")
        return
    if not args.output:
        raise T2IError(f"convert {args.what}: give the run folder to write (-o RUN_DIR)")
    if holds_run(Path(args.output)):
        raise T2IError(f"{args.output} already holds a run; convert into a new folder (-o)")
    if args.what == "ssagan" and len(args.discriminator) > 1:
        raise T2IError("ssagan: give one --discriminator file (netD_XXX.pth)")
    if args.what == "dfgan":
        out = convert_dfgan(args.checkpoint, args.output, args.text_encoder, args.captions, args.vocab, args.max_words)
    elif args.what == "ssagan":
        out = convert_ssagan(args.checkpoint, args.output, (args.discriminator or [None])[0], args.text_encoder,
                             args.captions, args.vocab, args.max_words)
    elif args.what in ("attngan", "mirrorgan"):
        convert = convert_attngan if args.what == "attngan" else convert_mirrorgan
        out = convert(args.checkpoint, args.output, args.discriminator, args.text_encoder, args.captions,
                      args.vocab, args.max_words)
    else:
        out = convert_damsm(args.checkpoint, args.output, args.image_encoder, args.captions, args.vocab)
    print(f"run folder: {out}")
