"""A path convertor for values that may hold any character.

Starlette's ``path`` convertor (``.*``) stops at a line break, so a request whose value
carries an encoded newline (``%0A``) matched no route and got a 404 instead of the answer
its route gives every other value (DLX ``tokentfa``: 401; the gateway: forwarded). Routes
declare ``{name:anytext}`` instead of ``{name:path}``.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

__all__ = ["ANY_TEXT"]

ANY_TEXT = "anytext"


class AnyTextConvertor(Convertor[str]):
    """Like ``path`` (slashes included), across line breaks too."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(ANY_TEXT, AnyTextConvertor())
