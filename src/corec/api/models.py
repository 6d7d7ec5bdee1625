"""The API's typed bodies: pydantic models made from the bus contract's msgspec structs.

The request and reply payloads of the plugins' query endpoints (``corec.messages``) are
the one definition of every record the API serves. :func:`model_of` turns such a struct
into a pydantic model with the same name, field names and types, so the OpenAPI
document shows exactly what the bus carries (units in the field names, as the messages
spell them), and nothing is written twice.

Type mapping (recursively): a ``msgspec.Struct`` → its generated model; ``Decimal`` →
:data:`DecimalStr` (a JSON string in plain notation, ``"0.00000000"``, never exponent
or float); ``tuple[X, ...]`` → ``list[X]``; everything else (``int``, ``str``, ``bool``,
``Literal``, ``dict[str, X]``, ``X | None``) unchanged.
"""

from __future__ import annotations

import types
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, create_model

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"


def decimal_text(value: Decimal) -> str:
    """``value`` in plain notation (``Decimal("1E+2")`` → ``"100"``, ``0E-8`` →
    ``"0.00000000"``), the form every Decimal takes in the API's JSON."""
    return format(value, "f")


DecimalStr = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["1234.56"]},
        mode="serialization",
    ),
]
"""A Decimal sent as a JSON string in plain notation (exact: never a float)."""

_MODELS: dict[type, type[BaseModel]] = {}


class ApiModel(BaseModel):
    """Base of the API's models: unknown fields rejected in bodies, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _convert(annotation: Any) -> Any:
    if isinstance(annotation, type):
        if issubclass(annotation, msgspec.Struct):
            return model_of(annotation)
        if annotation is Decimal:
            return DecimalStr
        return annotation
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return list[_convert(args[0])]  # type: ignore[misc]
        return tuple[tuple(_convert(a) for a in args)]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        return Union[tuple(_convert(a) for a in args)]  # noqa: UP007
    if origin is dict:
        return dict[_convert(args[0]), _convert(args[1])]  # type: ignore[misc]
    if origin is list:
        return list[_convert(args[0])]  # type: ignore[misc]
    if origin is Literal:
        return annotation
    return annotation


def model_of(struct: type[msgspec.Struct]) -> type[BaseModel]:
    """The pydantic model of ``struct`` (cached: one model per struct).

    Fields keep their names, defaults and docs (the struct's docstring becomes the
    model's description in the OpenAPI document).

    Raises:
        TypeError: ``struct`` is not a msgspec Struct class.
    """
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        raise TypeError(f"model_of expects a msgspec.Struct class, got {struct!r}")
    cached = _MODELS.get(struct)
    if cached is not None:
        return cached
    fields: dict[str, Any] = {}
    for info in msgspec.structs.fields(struct):
        annotation = _convert(info.type)
        if info.default is not msgspec.NODEFAULT:
            fields[info.name] = (annotation, Field(default=info.default))
        elif info.default_factory is not msgspec.NODEFAULT:
            fields[info.name] = (annotation, Field(default_factory=info.default_factory))
        else:
            fields[info.name] = (annotation, ...)
    model = create_model(  # type: ignore[call-overload]
        struct.__name__,
        __base__=ApiModel,
        __doc__=(struct.__doc__ or struct.__name__).strip(),
        **fields,
    )
    _MODELS[struct] = model
    return model


def builtins(struct: msgspec.Struct) -> Any:
    """``struct`` as dicts and lists with its Decimals kept (what a response model of
    :func:`model_of` validates)."""
    return msgspec.to_builtins(struct, builtin_types=(Decimal,))


def jsonable(struct: msgspec.Struct) -> Any:
    """``struct`` as JSON-ready builtins in the shape of :func:`model_of` (Decimals as
    plain-notation strings, tuples as lists): for the WebSocket and event listings."""
    return _plain(msgspec.to_builtins(struct, builtin_types=(Decimal,)))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Page(ApiModel):
    """Paging of a list reply: ``total`` matching records, this page's ``limit`` and
    ``offset``; the records are in ``items``."""

    total: int
    limit: int
    offset: int


def page_model(item: type[msgspec.Struct] | type[BaseModel], name: str) -> type[BaseModel]:
    """A list reply model ``name``: :class:`Page` plus ``items: list[item]``."""
    item_model = model_of(item) if issubclass(item, msgspec.Struct) else item
    return create_model(name, __base__=Page, items=(list[item_model], ...))  # type: ignore[call-overload,valid-type]
