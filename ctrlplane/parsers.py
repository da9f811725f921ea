"""The API's JSON parser: DRF's, refusing what cannot be stored safely with a 400."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from events.jsonsafe import UnsafeJSON, check_json


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        try:
            check_json(data)
        except UnsafeJSON as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        return data
