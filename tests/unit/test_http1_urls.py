"""worker.http1.split_url sends what httpx.URL would have, on its fast path and off it."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.http1 import Target, split_url

PLAIN = "abcXYZ019-._~:/?#[]@!$&'()*+,;=%"
ODD = PLAIN + ' "<>\\^`{|}é…Ж/.'


def httpx_target(url: str) -> Target:
    parsed = httpx.URL(url)
    default = 443 if parsed.scheme == "https" else 80
    credentials = (parsed.username, parsed.password) if parsed.username else None
    return Target(
        parsed.scheme,
        parsed.raw_host.decode("ascii"),
        parsed.port or default,
        parsed.raw_path.decode("ascii"),
        credentials,
    )


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=st.sampled_from(
        ["example.com", "News.Example.COM", "127.0.0.1", "[::1]", "xn--80a.xn--j1amh"]
    ),
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    userinfo=st.sampled_from(["", "user@", "user:pa%40ss@"]),
    rest=st.text(alphabet=ODD, max_size=40),
)
def test_split_url_matches_httpx(
    scheme: str, host: str, port: str, userinfo: str, rest: str
) -> None:
    url = f"{scheme}://{userinfo}{host}{port}/{rest}"
    try:
        expected = httpx_target(url)
    except httpx.InvalidURL:
        with pytest.raises(httpx.InvalidURL):
            split_url(url)
        return
    assert split_url(url) == expected


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("http://a.com?x=1", "/?x=1"),
        ("http://a/b?", "/b?"),
        ("http://a/x/./y/../z", "/x/z"),
        ("http://a/%zz", "/%zz"),
        (
            "http://a/новини?q=мир#frag",
            "/%D0%BD%D0%BE%D0%B2%D0%B8%D0%BD%D0%B8?q=%D0%BC%D0%B8%D1%80",
        ),
        ("http://a/b c", "/b%20c"),
    ],
)
def test_request_targets(url: str, path: str) -> None:
    assert split_url(url).path == path


def test_idna_host_and_credentials() -> None:
    target = split_url("https://u:p%40ss@пример.укр/x")
    assert target.host == "xn--e1afmkfd.xn--j1amh"
    assert target.port == 443
    assert target.credentials == ("u", "p@ss")


@pytest.mark.parametrize("url", ["ftp://a/x", "http:///x", "http://a:99999/x", "http://a:x/"])
def test_unrequestable_urls_are_invalid(url: str) -> None:
    with pytest.raises(httpx.InvalidURL):
        split_url(url)
