"""What an adapter is: a class with a kind, a namespaced name, a version and a params model.

An adapter implements one call for its kind:

- :class:`Dataset` ``load(ctx) -> data``
- :class:`Model` ``build(ctx, data) -> model``
- :class:`Method` ``run(ctx, data, model) -> outputs`` (a dict of named outputs)
- :class:`Metric` ``compute(ctx, result) -> {metric name: number}``

Other kinds (optimizers, example-selection policies, training observers; see
:mod:`harness.training`) are *components* that a method's params take, written in a
spec as ``{use: adapter-name, ...params}`` exactly like top-level components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_serializer, model_validator

if TYPE_CHECKING:
    from pathlib import Path

    from .context import RunContext


class Params(BaseModel):
    """Base of every adapter's params model: unknown keys are errors, and a float field
    takes finite numbers only (opt in per field with ``Field(allow_inf_nan=True)``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class Component(BaseModel):
    """A nested component in a spec: ``{use: adapter-name, ...params}``.

    A plain string is accepted too: the name of a top-level component of the spec
    (``dataset: digits``) or an adapter name with default params (``optimizer: torch/adam``).
    The spec loader resolves every component to its adapter class and validated params.
    """

    model_config = ConfigDict(extra="allow")
    use: str = Field(description="adapter name, e.g. `sklearn/digits`")
    _adapter: type[Adapter] | None = PrivateAttr(default=None)
    _params: Params | None = PrivateAttr(default=None)
    _label: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"use": value}
        return value

    @classmethod
    def resolved(cls, use: str, adapter: type[Adapter], params: Params,
                 label: str | None = None) -> Component:
        comp = cls.model_construct(use=use)
        comp._adapter = adapter
        comp._params = params
        comp._label = label
        return comp

    @property
    def is_resolved(self) -> bool:
        return self._adapter is not None

    @property
    def adapter(self) -> type[Adapter]:
        if self._adapter is None:
            raise RuntimeError(f"component {self.use!r} was not resolved by the spec loader")
        return self._adapter

    @property
    def params(self) -> Params:
        if self._params is None:
            raise RuntimeError(f"component {self.use!r} was not resolved by the spec loader")
        return self._params

    @property
    def raw_params(self) -> dict[str, Any]:
        """The params as written (before validation)."""
        return dict(self.model_extra or {})

    @property
    def spec_name(self) -> str | None:
        """The top-level name this component was referenced by, if any."""
        return self._label

    @property
    def label(self) -> str:
        """The spec's name for this component (its key), or the adapter name."""
        return self._label or self.use

    def build(self) -> Any:
        """A fresh adapter instance with the validated params."""
        return self.adapter(self.params)

    def config(self) -> dict[str, Any]:
        """The canonical, fully defaulted form: what identity hashes and records hold."""
        return {"use": self.use, **self.params.model_dump(mode="json")}

    def versions(self) -> dict[str, str]:
        """Adapter name -> version for this component and every component nested in it."""
        out = {self.use: self.adapter.version}
        for child in iter_components(self.params):
            out.update(child.versions())
        return out

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> Any:
        if self._params is not None:
            return {"use": self.use, **self._params.model_dump(mode="json")}
        return handler(self)


def component_field(kind: str, default: Any = ..., description: str = "") -> Any:
    """A params field that takes a component of ``kind`` (``default`` may be a name string)."""
    extra: dict[str, Any] = {"harness_kind": kind}
    if default is ...:
        return Field(..., description=description, json_schema_extra=extra)
    if isinstance(default, (list, tuple)):
        items = list(default)
        return Field(default_factory=lambda: [Component.model_validate(i) for i in items],
                     description=description, json_schema_extra=extra)
    if default is None:
        return Field(None, description=description, json_schema_extra=extra)
    return Field(default_factory=lambda: Component.model_validate(default),
                 description=description, json_schema_extra=extra)


def iter_components(params: BaseModel) -> list[Component]:
    """Every resolved component directly inside ``params`` (lists and dicts included)."""
    found: list[Component] = []

    def visit(value: Any) -> None:
        if isinstance(value, Component):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))

    for name in type(params).model_fields:
        visit(getattr(params, name))
    return found


class Adapter:
    """Base class: subclass one of :class:`Dataset`, :class:`Model`, :class:`Method`,
    :class:`Metric` (or a component kind) and set ``name``, ``version`` and ``Params``.

    The first line of the class docstring is the one-line description ``harness list``
    shows.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Params: ClassVar[type[Params]] = Params
    #: params that name code this adapter imports or runs (a module path, a script):
    #: a spec using them runs only with ``--trust-code`` (see docs/writing-an-adapter.md)
    code_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def description(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""


class Dataset(Adapter):
    """Loads data. ``load`` receives a context seeded per dataset, shared by all cells."""

    kind: ClassVar[str] = "dataset"
    #: True when ``load()``'s result is a function of the params, the seed and the adapter's
    #: version alone, so the plan may reuse its fingerprint from the disk cache instead of
    #: loading it again. Set False for data read from files, folders or data packages.
    fingerprint_cacheable: ClassVar[bool] = True

    def load(self, ctx: RunContext) -> Any:
        raise NotImplementedError

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        """The files and folders ``load`` would read, found without reading them (no
        download, nothing parsed), for an adapter with ``fingerprint_cacheable = False``.

        When it names them, the fingerprint is cached on disk keyed also by their sizes
        and modification times (every file under a folder), so a re-run loads nothing
        while they are unchanged; a path that does not exist counts as "absent" (it
        appearing later changes the key). ``None`` (the default, or when they cannot be
        found cheaply) means: load the data to fingerprint it."""
        return None


class Model(Adapter):
    """Builds a model (usually a ``torch.nn.Module``) for the given data."""

    kind: ClassVar[str] = "model"

    def build(self, ctx: RunContext, data: Any) -> Any:
        raise NotImplementedError


class Method(Adapter):
    """Runs: trains, evaluates, generates or measures; returns named outputs.

    Conventional output keys: ``examples`` (a list of dicts written to
    ``examples.jsonl``), ``scalars`` (name -> number, picked up by the ``scalars``
    metric); anything JSON-serializable and small is kept in the record.

    ``scalars`` (class attribute) declares the names the method reports in
    ``outputs["scalars"]`` (shell patterns such as ``loss_*`` allowed), so that claims on
    them are checked at validate time; ``None`` (the default) means "not declared".
    """

    kind: ClassVar[str] = "method"
    scalars: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def scalar_names(cls, params: Any) -> list[str] | None:
        """The names this method reports in ``outputs["scalars"]``; None when unknown."""
        return list(cls.scalars) if cls.scalars is not None else None

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class CellResult:
    """What a metric sees: the data, the built model and the method's outputs."""

    data: Any
    model: Any
    outputs: dict[str, Any]


class Metric(Adapter):
    """Turns a cell's outputs into numbers: returns ``{metric name: float}``.

    ``outputs`` declares the names ``compute`` returns (shell patterns such as
    ``per_class_*`` allowed); claims and report rows are checked against them at validate
    time. Undeclared, a metric is taken to return one number named after the adapter
    (``macro-f1`` -> ``macro_f1``). ``dynamic_outputs = True`` says the names depend on the
    data or the method: then names the declaration does not cover are allowed.
    Override :meth:`output_names` when the names depend on the params (a ``name:`` or
    ``prefix:`` param).
    """

    kind: ClassVar[str] = "metric"
    outputs: ClassVar[tuple[str, ...] | None] = None
    dynamic_outputs: ClassVar[bool] = False

    @classmethod
    def output_names(cls, params: Any, method: Component | None = None
                     ) -> tuple[list[str], bool]:
        """(names or patterns this metric returns for ``params`` in a cell whose method is
        ``method``, whether other names may appear too)."""
        if cls.outputs is not None:
            return list(cls.outputs), cls.dynamic_outputs
        return [default_output_name(cls.name)], cls.dynamic_outputs

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        raise NotImplementedError


def default_output_name(adapter_name: str) -> str:
    """The output name of a metric that declares none: ``pkg/macro-f1`` -> ``macro_f1``."""
    return adapter_name.rsplit("/", 1)[-1].replace("-", "_")


SECTION_KINDS = {"datasets": "dataset", "models": "model", "methods": "method", "metrics": "metric"}
KIND_SECTIONS = {v: k for k, v in SECTION_KINDS.items()}
