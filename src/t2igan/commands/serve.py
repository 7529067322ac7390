"""``t2igan serve RUN_DIR [--port 7860]``: a local web page to try a trained model (see :mod:`t2igan.demo`)."""

from __future__ import annotations

HELP = "start a local web demo for a trained model"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run folder (or a folder with model.safetensors + config.json)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--max-images", type=int, default=16, help="most images per request (default 16)")
    parser.add_argument("--max-waiting", type=int, default=4,
                        help="requests that may wait for the model; more get 503 busy (default 4)")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def run(args) -> None:
    from ..demo import make_server
    from ..pipeline import Text2ImagePipeline

    pipe = Text2ImagePipeline.from_pretrained(args.run_dir, device=args.device)
    server = make_server(pipe, args.host, args.port, quiet=not args.verbose,
                         max_images=args.max_images, max_waiting=args.max_waiting)
    host, port = server.server_address[:2]
    print(f"t2igan demo: {pipe.model_name} from {args.run_dir} at http://{host}:{port}/  (Ctrl+C to stop)",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
