"""User text shown as text, never as markup: in Streamlit's Markdown and on a terminal.

Streamlit renders the body of st.markdown, st.caption, st.error/warning/info/success, widget
labels and help as GitHub-flavoured Markdown with its own extensions: `:red[...]` colour and
badge directives (remark-directive), `$...$` math (remark-math), `:emoji:` and
`:material/icon:` shortcodes and bare-URL autolinks. A file named
`[phish](https://evil.example/login) :red[WARNING] ![t](http://127.0.0.1:9/t.png).png` would show a
working link, red text, and make the browser fetch the image. `md()` makes any user text (file
names, prompts, labels, causes, messages that quote a request) render as exactly its characters.

`terminal()` does the same for the CLI: control characters (ANSI escape sequences, carriage
returns, backspaces, bells) and bidirectional overrides in a name are shown as visible escapes,
so a name cannot rewrite the terminal line, clear the screen or reorder what is printed.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Characters that start an inline construct anywhere: code, emphasis, strikethrough, links and
# images, footnotes, autolinks and HTML, entities, math, Streamlit directives and a scheme's
# "://" or "mailto:" (GFM autolink literals), an e-mail autolink's "@", and the backslash itself.
# A backslash escape is plain text to every micromark extension Streamlit uses (GFM, directives,
# math), so an escaped character starts nothing. Other punctuation stays as typed so ordinary
# names read unchanged in the source ("IMG_0042.jpg", "photo-1.png").
_ALWAYS: Final = frozenset("\\`*~[]!<>&$:@|{}")
# ...and at the start of the text, the characters that open a block (heading, quote, list, rule)
_AT_START: Final = frozenset("#>-+=")
# Shortcodes (`:smile:`, `:material/x:`, `:streamlit:`) are replaced in text after escapes are
# resolved: a zero-width space after each colon keeps `:name:` from matching.
_ZERO_WIDTH_SPACE: Final = "\u200b"
# Bidirectional controls reorder what is displayed (a name "evil\u202egnp.exe" shows as "evilexe.png")
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REPLACEMENT: Final = "\ufffd"


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _BIDI


def plain(text: object) -> str:
    """One line of text: line breaks and tabs become spaces, other control characters and
    bidirectional overrides become U+FFFD."""
    value = "" if text is None else str(text)
    return "".join((" " if ch in "\r\n\t" else _REPLACEMENT) if _is_control(ch) else ch for ch in value)


def md(text: object) -> str:
    """`text` as Streamlit Markdown that renders as exactly its characters: no link, image,
    emphasis, heading, list, code, HTML, colour or badge directive, math, emoji or icon."""
    value = plain(text)
    out: list[str] = []
    leading_digits = True
    for index, ch in enumerate(value):
        before = value[index - 1] if index else ""
        after = value[index + 1] if index + 1 < len(value) else ""
        if (
            ch in _ALWAYS
            or (index == 0 and ch in _AT_START)
            # `_` opens or closes emphasis only at a word's edge ("IMG_0042" stays as typed)
            or (ch == "_" and not (before.isalnum() and after.isalnum()))
            # "1. " or "1) " at the start is an ordered list; "www." starts a GFM autolink
            or (ch in ".)" and leading_digits and index > 0)
            or (ch == "." and value[max(0, index - 3) : index].lower() == "www")
        ):
            out.append("\\" + ch)
        elif ch == " " and (index == 0 or before == " "):
            out.append("\u00a0")  # leading or repeated spaces: no indented code block, kept as typed
        else:
            out.append(ch)
        if ch == ":":
            out.append(_ZERO_WIDTH_SPACE)
        leading_digits = leading_digits and ch.isdigit()
    return "".join(out)


def terminal(text: object) -> str:
    """`text` safe to print on a terminal: every control character (ESC of an ANSI sequence,
    CR, BS, BEL, NUL, DEL, C1 controls) and bidirectional override shown as a visible escape."""
    value = "" if text is None else str(text)
    return "".join(_escape_code(ch) if _is_control(ch) else ch for ch in value)


def _escape_code(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
