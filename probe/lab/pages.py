"""Page bodies and headers of the lab's web behaviours (pure, no I/O).

Every function returns a :class:`Page` (status, reason, headers, body).  The texts are written
for the lab: they carry the key phrases analysis fingerprints look for (Cloudflare error 1009,
CloudFront geo-restriction, HTTP 451, sanctions notices, the Iranian block page's iframe), not
copies of real pages.  Normal pages are deterministic per hostname and 2–8 kB long.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from dataclasses import dataclass, field
from functools import lru_cache

Headers = tuple[tuple[str, str], ...]
HTML = "text/html; charset=utf-8"
LAB_SERVER = "lab-httpd/1.0"
IRAN_BLOCKPAGE_SRC = "http://10.10.34.34?type=Invalid Site&policy=MainPolicy"
BLOCKED_BY_LINK = '<https://authority.example/notice>; rel="blocked-by"'


@dataclass(frozen=True)
class Page:
    """One complete HTTP response (the server adds Content-Length and Connection)."""

    status: int
    reason: str
    headers: Headers = field(default=())
    body: bytes = b""


def _html(title: str, body_html: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    ).encode()


def _hdrs(*extra: tuple[str, str], server: str = LAB_SERVER, ctype: str = HTML) -> Headers:
    return (("Server", server), ("Content-Type", ctype), *extra)


_WORDS = (
    "access", "network", "measurement", "open", "library", "archive", "report", "public",
    "science", "community", "research", "education", "software", "documentation", "update",
    "service", "region", "policy", "country", "article", "history", "culture", "language",
    "travel", "weather", "market", "science", "music", "support", "data", "project", "release",
    "change", "guide", "forum", "notice", "index", "reader", "visitor", "editor", "review",
)  # fmt: skip


@lru_cache(maxsize=16)
def _filler(variant: int, n_paragraphs: int) -> str:
    """Deterministic paragraphs of filler text (cached: bodies are precomputed cheaply)."""
    seed = hashlib.sha256(f"lab-filler-{variant}".encode()).digest()
    paras = []
    for p in range(n_paragraphs):
        words = [_WORDS[(seed[(p * 7 + i) % 32] + i * (p + 3)) % len(_WORDS)] for i in range(60)]
        sentence = " ".join(words)
        paras.append(f"<p>{sentence[0].upper()}{sentence[1:]}.</p>")
    return "\n".join(paras)


def normal_page(hostname: str, title: str) -> Page:
    """The site's ordinary 200 page: a <title> and 2–8 kB of body."""
    h = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:4], "big")
    n_paragraphs = 5 + h % 12  # ~400 bytes each: 2–7 kB
    body = _html(
        title or hostname,
        f"<header><h1>{html.escape(title or hostname)}</h1></header>\n<main>\n"
        f"{_filler(h % 16, n_paragraphs)}\n</main>\n"
        f"<footer>Served by the res64 lab for {html.escape(hostname)}.</footer>",
    )
    return Page(200, "OK", _hdrs(("Cache-Control", "max-age=60")), body)


def unavailable_page(cc: str) -> Page:
    """Target of ``geo_redirect``: a 200 page saying the region is not served."""
    body = _html(
        "Not available in your region",
        "<h1>This service is not available in your country/region.</h1>\n"
        f"<p>Region detected: {html.escape(cc)}.</p>",
    )
    return Page(200, "OK", _hdrs(), body)


def cloudflare_ray() -> str:
    return f"{secrets.token_hex(8)}-FRA"


def cloudflare_1009(host: str, cc: str, ray: str) -> Page:
    """403 modelled on Cloudflare error 1009 (country banned by the site owner)."""
    h, c = html.escape(host), html.escape(cc)
    body = _html(
        f"Access denied | {host} used Cloudflare to restrict access",
        '<div id="cf-wrapper"><div id="cf-error-details">\n'
        '<h1 class="cf-error-title">Error 1009</h1>\n'
        f"<h2>Access denied</h2>\n<h2>What happened?</h2>\n"
        f"<p>The owner of this website ({h}) has banned the country or region your IP address "
        f"is in ({c}) from accessing this website.</p>\n"
        f'<p class="ray">Cloudflare Ray ID: <strong>{html.escape(ray.split("-")[0])}</strong>'
        "</p>\n</div></div>",
    )
    hdrs = _hdrs(("CF-RAY", ray), ("Cache-Control", "no-store"), server="cloudflare")
    return Page(403, "Forbidden", hdrs, body)


def cloudflare_challenge(host: str, ray: str) -> Page:
    """403 bot challenge ("Just a moment..."): not a denial by itself."""
    body = _html(
        "Just a moment...",
        f"<h1>{html.escape(host)}</h1>\n<h2>Checking your browser before accessing "
        f"{html.escape(host)}.</h2>\n<p>Checking your browser. This process is automatic.</p>\n"
        "<noscript>Enable JavaScript and cookies to continue</noscript>",
    )
    hdrs = _hdrs(
        ("CF-RAY", ray), ("cf-mitigated", "challenge"), ("Cache-Control", "no-store"),
        server="cloudflare",
    )  # fmt: skip
    return Page(403, "Forbidden", hdrs, body)


_CLOUDFRONT_ID = "LAB0cloudfront0request0id0000000000000000000000000000=="


def cloudfront_geoblock() -> Page:
    """403 modelled on Amazon CloudFront's geo-restriction error."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" '
        '"http://www.w3.org/TR/html4/loose.dtd">\n<HTML><HEAD><META HTTP-EQUIV="Content-Type" '
        'CONTENT="text/html; charset=iso-8859-1">\n<TITLE>ERROR: The request could not be '
        "satisfied</TITLE>\n</HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be "
        'satisfied.</H2>\n<HR noshade size="1px">\nThe Amazon CloudFront distribution is '
        'configured to block access from your country.\n<BR clear="all">\n<HR noshade '
        'size="1px">\n<PRE>\nGenerated by cloudfront (CloudFront)\n'
        f"Request ID: {_CLOUDFRONT_ID}\n</PRE>\n</BODY></HTML>\n"
    ).encode()
    hdrs = _hdrs(
        ("X-Cache", "Error from cloudfront"), ("Via", "1.1 lab.cloudfront.net (CloudFront)"),
        ("X-Amz-Cf-Pop", "FRA56-P1"), ("X-Amz-Cf-Id", _CLOUDFRONT_ID),
        server="CloudFront",
    )  # fmt: skip
    return Page(403, "Forbidden", hdrs, body)


def legal_451(host: str) -> Page:
    """451 Unavailable For Legal Reasons (RFC 7725) with a ``blocked-by`` link."""
    body = _html(
        "Unavailable For Legal Reasons",
        "<h1>Unavailable For Legal Reasons</h1>\n"
        f"<p>Access to {html.escape(host)} from your location is not permitted because of a "
        "legal demand.</p>\n<p>See https://authority.example/notice for details.</p>",
    )
    return Page(451, "Unavailable For Legal Reasons", _hdrs(("Link", BLOCKED_BY_LINK)), body)


def sanctions_notice(host: str) -> Page:
    """403 with a U.S. trade-controls notice."""
    body = _html(
        "Service not available",
        f"<h1>{html.escape(host)} is not available</h1>\n"
        "<p>Due to U.S. trade control laws and sanctions, this service is not available in "
        "your country.</p>",
    )
    return Page(403, "Forbidden", _hdrs(), body)


def national_blockpage(cc: str) -> Page:
    """200 national block page; for IR modelled on Iran's (an iframe to 10.10.34.34).

    The iframe address is only text: nothing in the lab ever connects there.
    """
    if cc == "IR":
        body = (
            '<html><head><meta http-equiv="Content-Type" content="text/html; '
            'charset=windows-1256"><title>M1-6</title></head><body>'
            f'<iframe src="{IRAN_BLOCKPAGE_SRC}" style="width: 100%; height: 100%" '
            'scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" '
            'hspace="0"></iframe></body></html>\r\n\r\n'
        ).encode()
        return Page(200, "OK", (("Content-Type", "text/html"),), body)
    body = _html(
        "Access restricted",
        f"<h1>Access to this site is restricted</h1>\n<p>This site has been blocked by order "
        f"of the national regulator of {html.escape(cc)}.</p>",
    )
    return Page(200, "OK", (("Content-Type", "text/html"),), body)


def oversized_head() -> Page:
    """Status and headers of the ``oversized`` response (its body is streamed separately)."""
    return Page(200, "OK", _hdrs(("Cache-Control", "no-store")))


def redirect(location: str) -> Page:
    """302 to ``location`` (geo_redirect and redirect_loop)."""
    body = _html("Found", f'<p>Moved to <a href="{html.escape(location)}">here</a>.</p>')
    return Page(302, "Found", _hdrs(("Location", location)), body)


def forbidden(hostname: str, title: str) -> Page:
    """A plain 403 whose ``<title>`` is the site's own title (no fingerprint: a bare refusal)."""
    body = _html(
        title or hostname,
        f"<h1>403 Forbidden</h1>\n<p>You are not allowed to access {html.escape(hostname)}.</p>",
    )
    return Page(403, "Forbidden", _hdrs(("Cache-Control", "no-store")), body)


def simple(status: int, reason: str) -> Page:
    """A plain error page (400, 404, 405, ...)."""
    return Page(status, reason, _hdrs(ctype="text/plain; charset=utf-8"), f"{reason}\n".encode())
