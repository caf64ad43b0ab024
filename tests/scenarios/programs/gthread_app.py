"""A WSGI app for gunicorn's gthread worker: /slow runs 0.3 s of pure
Python, anything else answers at once.

    GILTRACE=trace.gtr gunicorn -k gthread --threads 4 -w 2 gthread_app:app
"""


def render(n: int) -> int:
    x = 0
    for i in range(n): x = (x * 31 + i) % 1000003  # noqa: E701  # fmt: skip  # LINE_SLOW
    return x


def app(environ, start_response):
    body = b"ok"
    if environ.get("PATH_INFO") == "/slow":
        body = str(render(1_500_000)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
