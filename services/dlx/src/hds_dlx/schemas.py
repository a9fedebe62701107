"""The base of the DLX wire format (DIN/TS 19455): tokens/schemas.py and downloads/schemas.py.

The public models carry the standard's field names as aliases and mirror its ``required``
lists exactly: a property the standard leaves optional is optional here as well, and is
left out of an answer (never sent as ``null``) when there is no value for it. Optional
fields are typed ``X | SkipJsonSchema[None]`` so that the published schema says ``X``, as
the standard does, while the model can still hold "no value".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["DlxModel"]


class DlxModel(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)
