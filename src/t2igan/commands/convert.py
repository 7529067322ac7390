"""``t2igan convert dfgan|damsm|ssagan OFFICIAL.pth [--captions captions.pickle] -o RUN_DIR``: official
checkpoints -> t2igan run folders (see :mod:`t2igan.convert` for the key layouts)."""

from __future__ import annotations

HELP = "convert an official DF-GAN / DAMSM / SSA-GAN checkpoint to a run folder"


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=("dfgan", "damsm", "ssagan"), help="which official model the file holds")
    parser.add_argument("checkpoint", help="dfgan: state_epoch_N.pth (netG/netD/netC); damsm: text_encoder*.pth; "
                                           "ssagan: netG_XXX.pth")
    parser.add_argument("-o", "--output", required=True, help="run folder to write")
    parser.add_argument("--captions", help="AttnGAN/DF-GAN captions.pickle of the data set (the vocabulary)")
    parser.add_argument("--vocab", help="a t2igan vocab.json instead of --captions")
    parser.add_argument("--text-encoder", help="dfgan, ssagan: the DAMSM text_encoder*.pth it was trained with")
    parser.add_argument("--discriminator", help="ssagan: the netD_XXX.pth saved with netG")
    parser.add_argument("--image-encoder", help="damsm: the image_encoder*.pth saved with the text encoder")
    parser.add_argument("--max-words", type=int, default=18, help="dfgan: longest caption in tokens (CUB 18, COCO 12)")


def run(args) -> None:
    from ..convert import convert_damsm, convert_dfgan, convert_ssagan

    if args.what == "dfgan":
        out = convert_dfgan(args.checkpoint, args.output, args.text_encoder, args.captions, args.vocab, args.max_words)
    elif args.what == "ssagan":
        out = convert_ssagan(args.checkpoint, args.output, args.discriminator, args.text_encoder, args.captions,
                             args.vocab, args.max_words)
    else:
        out = convert_damsm(args.checkpoint, args.output, args.image_encoder, args.captions, args.vocab)
    print(f"run folder: {out}")
