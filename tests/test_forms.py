"""Tests of the contribution pages' helpers (territoires.forms) that need no app run."""

from __future__ import annotations

from territoires import forms


def test_safe_md_escapes_markup_and_breaks_autolinks() -> None:
    """Streamlit's Markdown links bare URLs, www. names and e-mails even when escaped (seen
    in chromium); safe_md escapes Markdown and breaks those with a zero-width space."""
    out = forms.safe_md('<script>x</script> [a](http://x.test) www.y.fr moi@x.fr & "q"')
    assert "<script>" not in out and "\\<script\\>" in out
    assert "\\[a\\]" in out
    assert "http://" not in out and "http:\u200b//" in out
    assert "www." not in out and "moi@" not in out
    assert out.replace("\u200b", "").replace("\\", "").startswith("<script>x</script>")
