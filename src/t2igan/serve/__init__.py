"""``t2igan serve``: a Gradio app over a trained model (needs the ``demo`` extra: ``pip install t2igan[demo]``).

    from t2igan.serve import serve
    running = serve("runs/00000-dfgan-shapes", port=0)   # a thread; running.url, running.close()

:mod:`.app` builds the page from a :class:`~t2igan.pipeline.Text2ImagePipeline`; :mod:`.server`
runs it on uvicorn behind a guard (Host/Origin checks, bounded bodies, slow-socket deadline).
"""

from __future__ import annotations

from ..errors import T2IError


def require_gradio() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise T2IError('t2igan serve needs Gradio: pip install "t2igan[demo]"') from None


def serve(run_or_name, host: str = "127.0.0.1", port: int = 7860, device: str | None = None,
          limits=None, allowed_hosts: list[str] | None = None, share: bool = False,
          background: bool = True, pipe=None, **server_options):
    """Load ``run_or_name`` (a run folder or a bundled name) and serve its page; returns a
    :class:`~t2igan.serve.server.RunningServer`. ``share=True`` asks Gradio for a public link
    instead of the local guarded server. ``server_options`` go to :func:`.server.start_server`
    (``max_body_bytes``, ``request_timeout_s``). ``pipe`` serves an already loaded pipeline."""
    require_gradio()
    from ..pipeline import Text2ImagePipeline
    from .app import DemoFunctions, build_blocks, theme
    from .server import start_server

    pipe = pipe or Text2ImagePipeline.from_pretrained(run_or_name, device=device)
    blocks = build_blocks(DemoFunctions(pipe, limits), str(run_or_name))
    if share:  # Gradio's own server and tunnel, only when asked for
        blocks.launch(server_name=host, server_port=port or None, share=True, theme=theme(),
                      prevent_thread_lock=background, ssr_mode=False)
        return None
    return start_server(blocks, host, port, allowed_hosts=allowed_hosts, background=background,
                        theme=theme(), **server_options)
