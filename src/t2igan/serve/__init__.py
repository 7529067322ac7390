"""``t2igan serve``: a Gradio app over a trained model (needs the ``demo`` extra: ``pip install t2igan[demo]``).

    from t2igan.serve import serve
    running = serve("runs/00000-dfgan-shapes", port=0)   # a thread; running.url, running.close()

:mod:`.app` builds the page from a :class:`~t2igan.pipeline.Text2ImagePipeline`; :mod:`.server`
runs it on uvicorn behind a guard that lets through the page, the app's functions (text and numbers
in) and their output images, nothing else. ``share=True`` adds a Gradio share tunnel to the same
guarded server.
"""

from __future__ import annotations

from ..errors import T2IError


def require_gradio() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise T2IError('t2igan serve needs Gradio: pip install "t2igan[demo]"') from None


def stop_on_sigterm() -> None:
    """SIGTERM stops the server as Ctrl+C does (the served images' folder is deleted on the way out)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def serve(run_or_name, host: str = "127.0.0.1", port: int = 7860, device: str | None = None,
          limits=None, allowed_hosts: list[str] | None = None, share: bool = False,
          background: bool = True, pipe=None, **server_options):
    """Load ``run_or_name`` (a run folder or a bundled name) and serve its page; returns a
    :class:`~t2igan.serve.server.RunningServer`. ``share=True`` also opens a public Gradio share
    link to the same guarded server (``running.share_url``). ``server_options`` go to
    :func:`.server.start_server` (``max_body_bytes``, ``request_timeout_s``, ``max_output_bytes``, ``max_output_files``).
    ``pipe`` serves an already loaded pipeline. Without ``background`` this blocks until Ctrl+C."""
    require_gradio()
    from ..pipeline import Text2ImagePipeline
    from .app import DemoFunctions, build_blocks, theme
    from .server import check_port, open_share_link, start_server

    check_port(port)
    from ..errors import T2IError
    from ..runs import resolve_run_dir

    pipe = pipe or Text2ImagePipeline.from_pretrained(run_or_name, device=device)
    try:  # the folder whose model card the page shows: the served run or bundled model, if it is one
        run_dir = resolve_run_dir(run_or_name)
    except T2IError:
        run_dir = None
    run_dir = run_dir if run_dir is not None and run_dir.is_dir() else None
    functions = DemoFunctions(pipe, limits)
    blocks, css = build_blocks(functions, str(run_or_name), run_dir)
    running = start_server(blocks, host, port, allowed_hosts=allowed_hosts, background=True, theme=theme(),
                           css=css, upload_limits=functions.limits, **server_options)
    if share:
        try:
            open_share_link(running, blocks.share_token)
        except BaseException:
            running.close()
            raise
    if not background:
        stop_on_sigterm()
        print(f"* running on {running.url}  (Ctrl+C to stop)", flush=True)
        if running.share_url:
            print(f"* public link: {running.share_url}  (anyone with it can use the page)", flush=True)
        running.wait()
    return running
