"""URL canonicalisation: one stable identity string per article (pure, no I/O).

The same article reaches us under many URLs: with ``utm_*`` tags from a feed,
through ``l.facebook.com`` or Google redirect wrappers, as an AMP page, on an
``m.`` mobile host, with or without ``www.``. ``Article.canonical_url`` is
unique in the database, so every one of those spellings must collapse to the
same string *before* we fetch twice and store twice.

Design choices (see ``docs/dedup.md`` for the full rule list and why):

* The result is an **identity key**, not a link to show users: ``www.``,
  ``m.``, ``mobile.`` and ``amp.`` host prefixes are removed, so the key may
  not resolve as-is. Keep the fetched URL (``Article.url``) for links.
* Rules are written out here on top of :mod:`urllib.parse` rather than taken
  from courlan / w3lib / url-normalize: courlan's tracker regex also strips
  ordinary parameters (anything containing ``ref``, ``source``, ``ga``, ``gl``,
  so ``?reference=`` or ``?gallery=``), which would merge *different* articles
  under one key -- silent data loss, whereas a surviving tracker only costs a
  duplicate the content hash still catches. w3lib and url-normalize would be
  new dependencies for what is a few dozen lines, and neither knows AMP or
  redirect wrappers.
* Canonicalisation is idempotent (``f(f(u)) == f(u)``, property-tested) and
  raises only :class:`InvalidURLError`, whatever text it is given, so callers
  need one ``except`` clause.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urljoin, urlsplit, urlunsplit

__all__ = [
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "InvalidURLError",
    "canonicalize_url",
    "same_site",
    "site_host",
]

# Longest URL we accept. Article.canonical_url is VARCHAR(4096); anything longer
# is garbage or an attack and would fail at insert time anyway.
MAX_URL_LENGTH = 4096


class InvalidURLError(ValueError):
    """The text is not an absolute http(s) URL with a host we can key on.

    A ``ValueError`` subclass so generic validation code still catches it;
    the pipeline should treat it as permanent (retrying cannot fix a URL).
    """


# -- tracking parameters -----------------------------------------------------
# Exact names (compared lower-cased). Sources: ClearURLs / AdGuard "general URL"
# lists and Firefox query stripping, trimmed to parameters that never select
# content on news sites.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "_openstat",
        "ocid",
        "cmpid",
        "cmp",
        "icid",
        "itid",
        "ito",
        "smid",
        "smtyp",
        "sr_share",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "referer",
        "rss",
        "rssfeed",
        "feedtype",
        "xtor",
        "usqp",
        "amp",
        "amp_js_v",
        "amp_gsa",
        "__twitter_impression",
        "ncid",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "spm",
        "share",
        "s_cid",
        "s_kwcid",
        "wt_mc",
        "wt.mc_id",
        "cid_source",
    }
)

# Prefixes (lower-cased): whole families of analytics parameters.
TRACKING_PREFIXES: tuple[str, ...] = (
    "utm_",
    "ns_",
    "at_",
    "pk_",
    "mtm_",
    "matomo_",
    "hsa_",
    "oly_",
    "vero_",
    "ga_",
    "itm_",
    "fb_",
    "_bta_",
)

# Parameters that are tracking only when their value names a channel, e.g.
# ``?source=rss`` (drop) versus ``?source=2`` on some CMS (keep).
_CHANNEL_PARAMS = frozenset({"source", "src", "from", "via", "feature", "origin", "output"})
_CHANNEL_VALUE_RE = re.compile(
    r"^(?:rss|feed|feeds|atom|twitter|tw|x|facebook|fb|linkedin|li|newsletter|email|e-?mail|"
    r"mail|share|social|whatsapp|wa|telegram|tg|reddit|push|app|ios|android|google|gnews|"
    r"msn|yahoo|flipboard|homepage|hp|tco|amp|sharebar|copy|copylink|link)(?:[_\-.:].*)?$",
    re.IGNORECASE,
)


def _is_tracking(key: str, value: str) -> bool:
    k = key.lower()
    if k in TRACKING_PARAMS or k.startswith(TRACKING_PREFIXES):
        return True
    if k == "outputtype":  # outputType=amp (Washington Post and other Arc sites)
        return value.lower() == "amp"
    return k in _CHANNEL_PARAMS and bool(_CHANNEL_VALUE_RE.match(value))


# -- redirect wrappers ---------------------------------------------------------
# (host suffix, path prefix, parameter names carrying the target). Only known
# wrappers: unwrapping ``?url=`` on arbitrary sites would turn e.g. an
# archive or a share page into a different article's key.
_WRAPPERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("l.facebook.com", "/l.php", ("u",)),
    ("lm.facebook.com", "/l.php", ("u",)),
    ("facebook.com", "/l.php", ("u",)),
    ("l.instagram.com", "/", ("u",)),
    ("news.url.google.com", "/url", ("url", "q")),
    ("google.com", "/url", ("q", "url")),
    ("linkedin.com", "/redir/redirect", ("url",)),
    ("out.reddit.com", "/", ("url",)),
    ("href.li", "/", ("",)),  # href.li/?https://...
    ("away.vk.com", "/away.php", ("to",)),
    ("vk.com", "/away.php", ("to",)),
    ("slack-redir.net", "/link", ("url",)),
    ("youtube.com", "/redirect", ("q",)),
    ("duckduckgo.com", "/l/", ("uddg",)),
    ("t.umblr.com", "/redirect", ("z",)),
    ("safelinks.protection.outlook.com", "/", ("url",)),
)
_GOOGLE_HOST_RE = re.compile(r"^(?:www\.)?google\.[a-z]{2,3}(?:\.[a-z]{2})?$")
# Feed-proxy hosts whose path sometimes embeds the real URL; the opaque
# ``/~r/<feed>/~3/<id>/`` form cannot be resolved offline.
_FEEDPROXY_HOSTS = frozenset({"feedproxy.google.com", "feeds.feedburner.com"})
_EMBEDDED_URL_RE = re.compile(r"https?(?::|%3a)(?:/|%2f){2}.*", re.IGNORECASE)
_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"

# -- host / path normalisation -------------------------------------------------
_STRIP_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")
_WWW_N_RE = re.compile(r"^www\d+\.")
_HOST_RE = re.compile(
    r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$"
)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters allowed verbatim in a path (RFC 3986 pchar + "/"), everything
# else is percent-encoded as UTF-8.
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_QUERY_SAFE = "-._~!$'()*,;:@/?"
_AMP_SUFFIX_RE = re.compile(r"\.amp(?=\.html?$|$)")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_UNWRAP = 8


def site_host(host: str) -> str:
    """``host`` without the ``www.``/``www2.``/``m.``/``mobile.``/``amp.`` prefixes.

    Prefixes are removed only while at least two labels remain, so ``m.co``
    or ``www.com`` are left alone.
    """
    changed = True
    while changed:
        changed = False
        match = _WWW_N_RE.match(host)
        if match and host.count(".") >= 2:
            host = host[match.end() :]
            changed = True
            continue
        for prefix in _STRIP_HOST_PREFIXES:
            if host.startswith(prefix) and host.count(".") >= 2:
                host = host[len(prefix) :]
                changed = True
                break
    return host


def same_site(a: str, b: str) -> bool:
    """True when two URLs are on the same site (hosts equal after :func:`site_host`).

    Deliberately stricter than "same registrable domain": a canonical link
    from ``blog.example.com`` to ``example.com`` is not trusted, which keeps
    one tenant of a shared host from claiming another's URL.
    """
    try:
        ha = urlsplit(a).hostname or ""
        hb = urlsplit(b).hostname or ""
    except ValueError:
        return False
    return bool(ha) and site_host(ha.rstrip(".")) == site_host(hb.rstrip("."))


def _normalize_host(parts: SplitResult) -> str:
    hostname = parts.hostname  # lower-cased by urllib, brackets removed
    if not hostname:
        raise InvalidURLError("URL has no host")
    hostname = hostname.rstrip(".")
    if ":" in hostname:  # IPv6 literal
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError as exc:
            raise InvalidURLError(f"bad IPv6 host {hostname!r}") from exc
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidURLError(f"bad host {hostname!r}") from exc
    if not _HOST_RE.match(ascii_host):
        raise InvalidURLError(f"bad host {hostname!r}")
    return site_host(ascii_host)


def _pct_normalize(text: str, safe: frozenset[str]) -> str:
    """RFC 3986 §6.2.2 percent-encoding normalisation.

    Escapes of unreserved characters are decoded, other escapes upper-cased,
    and characters outside ``safe`` encoded as UTF-8. Escapes are never
    decoded into reserved characters, so ``%2F`` stays distinct from ``/``.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            match = _PCT_RE.match(text, i)
            if match:
                decoded = chr(int(match.group(1), 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + match.group(1).upper())
                i += 3
                continue
            out.append("%25")
        elif ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, on a path already split into segments."""
    stack: list[str] = []
    segments = path.split("/")
    for seg in segments[1:]:
        if seg == "..":
            if stack:
                stack.pop()
        elif seg != ".":
            stack.append(seg)
    trailing = segments[-1] in {".", ".."}
    result = "/" + "/".join(stack)
    if trailing and not result.endswith("/"):
        result += "/"
    return result


def _normalize_path(path: str) -> str:
    path = _pct_normalize(path, _PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    path = re.sub(r"/{2,}", "/", path)
    path = _remove_dot_segments(path)
    # AMP: whole "amp" segments, and ".amp" before the extension (BBC's
    # /news/world-123.amp, /story.amp.html). Loop: "/x.amp.amp" must also
    # reach the fixed point in one call for idempotence.
    segments = [s for s in path.split("/") if s.lower() != "amp"]
    last = segments[-1] if segments else ""
    while True:
        stripped = _AMP_SUFFIX_RE.sub("", last, count=1)
        if stripped == last:
            break
        last = stripped
    if segments:
        segments[-1] = last
    path = "/".join(segments)
    path = re.sub(r"/{2,}", "/", path)
    # Trailing slash: "/story/1/" and "/story/1" are the same page on every
    # news CMS we know; one of them redirects to the other.
    path = path.rstrip("/")
    return path or "/"


def _normalize_query(query: str) -> str:
    if not query:
        return ""
    # surrogateescape keeps bytes that are not UTF-8 intact through the round
    # trip, so canonicalisation is lossless and idempotent for any input.
    pairs = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
    kept = sorted((k, v) for k, v in pairs if k and not _is_tracking(k, v))
    encoded: list[str] = []
    for key, value in kept:
        k = quote(key, safe=_QUERY_SAFE, errors="surrogateescape")
        if value:
            encoded.append(f"{k}={quote(value, safe=_QUERY_SAFE, errors='surrogateescape')}")
        else:
            encoded.append(k)
    return "&".join(encoded)


def _unwrap(parts: SplitResult) -> str | None:
    """The target URL if ``parts`` is a known redirect wrapper, else None."""
    host = (parts.hostname or "").rstrip(".")
    path = parts.path or "/"
    if host.endswith(_AMP_CACHE_SUFFIX):
        # https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a
        match = re.match(r"^/[a-z]/(s/)?(.+)$", path)
        if match:
            scheme = "https" if match.group(1) else "http"
            rest = match.group(2)
            query = f"?{parts.query}" if parts.query else ""
            return f"{scheme}://{rest}{query}"
        return None
    if host in _FEEDPROXY_HOSTS:
        match = _EMBEDDED_URL_RE.search(path)
        return unquote(match.group(0)) if match else None
    for suffix, prefix, names in _WRAPPERS:
        host_ok = host == suffix or host.endswith("." + suffix)
        if suffix == "google.com":
            host_ok = bool(_GOOGLE_HOST_RE.match(host))
        if not host_ok or not path.startswith(prefix):
            continue
        if names == ("",):
            target = unquote(parts.query)
            return target if target.lower().startswith(("http://", "https://")) else None
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        for name in names:
            value = params.get(name, "").strip()
            if value.lower().startswith(("http://", "https://")):
                return value
    return None


def _canonical_parts(text: str) -> str:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURLError(f"not an http(s) URL: scheme {scheme!r}")
    host = _normalize_host(parts)
    port = parts.port  # ValueError on garbage, mapped by the caller
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _normalize_path(parts.path)
    query = _normalize_query(parts.query)
    # Fragments never select a different article for a fetcher; credentials
    # (userinfo) are dropped so they are never stored.
    return urlunsplit((scheme, netloc, path, query, ""))


def _canonicalize(url: str) -> str:
    text = url.strip().replace("&amp;", "&")
    if not text:
        raise InvalidURLError("empty URL")
    if len(text) > 4 * MAX_URL_LENGTH:
        raise InvalidURLError("URL too long")
    # Wrappers are recognised on the *canonical* form, so a result is never
    # itself a wrapper and a second call has nothing left to unwrap.
    for _ in range(_MAX_UNWRAP):
        result = _canonical_parts(text)
        target = _unwrap(urlsplit(result))
        if target is None:
            if len(result) > MAX_URL_LENGTH:
                raise InvalidURLError("canonical URL too long")
            return result
        text = target.strip()
    raise InvalidURLError("too many nested redirect wrappers")


def canonicalize_url(url: str, *, page_canonical: str | None = None) -> str:
    """The identity key of ``url``; see the module docstring and docs/dedup.md.

    ``page_canonical`` is the page's ``<link rel=canonical>`` (or ``og:url``),
    possibly relative. It wins when it is a valid URL on the same site, since
    the publisher knows best which of its URLs is the article; it is ignored
    when it points elsewhere (syndication partners, spoofing) or to the site
    root while ``url`` does not (a common CMS bug that would merge every
    article into the home page).

    Raises :class:`InvalidURLError` (and nothing else) for non-http(s),
    hostless or otherwise unusable input.
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"URL must be a string, not {type(url).__name__}")
    try:
        base = _canonicalize(url)
    except InvalidURLError:
        raise
    except (ValueError, TypeError) as exc:  # urlsplit/port/idna on hostile text
        raise InvalidURLError(str(exc) or "invalid URL") from exc
    if not page_canonical or not isinstance(page_canonical, str):
        return base
    try:
        candidate = _canonicalize(urljoin(url.strip(), page_canonical.strip()))
    except (ValueError, TypeError):
        return base
    cand_parts = urlsplit(candidate)
    base_parts = urlsplit(base)
    if cand_parts.hostname != base_parts.hostname:
        return base
    if cand_parts.path == "/" and not cand_parts.query and base_parts.path != "/":
        return base
    return candidate
