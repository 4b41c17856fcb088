"""What every answer model of chalicelib/api/responses.py is made of: a closed camelCase object,
`absent()` for a field an answer may leave out, the identifiers and the objects of counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.alias_generators import to_camel

from chalicelib.catalogue.schemas import ecma, one_of
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.workflow.deletion import REMOVED_KINDS


def absent(description: str = "", **extra: Any) -> Any:
    """A field an answer may leave out (never null): not required, no default in the document."""
    return Field(None, description=description or None, **extra)


class View(BaseModel):
    """An answer's object: camelCase on the wire, nothing the model does not name."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, defer_build=True
    )


class OpenView(View):
    """An object that carries further properties by design (named where it is used)."""

    model_config = ConfigDict(extra="allow")


Count = Annotated[int, Field(ge=0)]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]
PassFail = Literal["PASS", "FAIL"]

if TYPE_CHECKING:
    VerdictName = str
    ReviewState = str
else:
    VerdictName = one_of(v.value for v in contracts.Verdict if v is not contracts.Verdict.NONE)
    ReviewState = one_of(("PENDING", *contracts.ReviewStatus))


class JobId(RootModel[str]):
    root: str = Field(pattern=ecma(contracts.JOB_ID_RE.pattern), examples=["20261125T101500Z-3f9a1c2b7d4e"])


class ImageRef(RootModel[str]):
    root: str = Field(pattern=ecma(contracts.IMAGE_REF_RE.pattern))


def _counts(names: list[str], required: bool) -> dict[str, Any]:
    """The fields of an object of counts keyed by statuses, verdicts or REMOVED_KINDS, as they are
    (upper-case names are not camelCase: each its own alias)."""
    return {name.lower(): (Count, Field(alias=name) if required else absent(alias=name)) for name in names}


if TYPE_CHECKING:
    Counts = View
    Verdicts = View
    Removed = View
else:
    Counts = create_model(
        "Counts",
        __base__=View,
        __doc__="how many of the job's images are in each status, live",
        **_counts([s.value for s in ImageStatus], True),
    )
    Verdicts = create_model(
        "Verdicts",
        __base__=View,
        __doc__="finished images per quality verdict (the worst scorecard outcome of their outputs)",
        **_counts([v.value for v in contracts.Verdict if v is not contracts.Verdict.NONE], False),
    )
    Removed = create_model(
        "Removed",
        __base__=View,
        __doc__="how many table items (images) and S3 objects of each kind were removed (so far, while deleting)",
        **_counts(list(REMOVED_KINDS), True),
    )
