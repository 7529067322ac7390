"""``t2igan serve RUN_OR_NAME``: a Gradio page to try a trained model (see :mod:`t2igan.serve`)."""

from __future__ import annotations

HELP = "start a local Gradio page for a trained model (pip install \"t2igan[demo]\")"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run folder (or a folder with model.safetensors + config.json) or a bundled name")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every address, for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another name this server may be reached by (Host header), e.g. behind a proxy")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--max-images", type=int, default=16, help="most images per request (default 16)")
    parser.add_argument("--max-waiting", type=int, default=8,
                        help="requests that may wait for the model; more are told to retry (default 8)")
    parser.add_argument("--share", action="store_true",
                        help="also open a public Gradio share link (needs internet) to the same guarded server: "
                             "anyone with the link can use the page (off by default)")


def run(args) -> None:
    from ..errors import T2IError
    from ..serve import serve
    from ..serve.app import Limits

    if args.max_images < 1 or args.max_waiting < 1:
        raise T2IError("--max-images and --max-waiting must be at least 1")
    serve(args.run_dir, host=args.host, port=args.port, device=args.device, allowed_hosts=args.allowed_host,
          limits=Limits(max_images=args.max_images, max_waiting=args.max_waiting), share=args.share,
          background=False)
