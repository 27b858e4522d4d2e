"""Offline validation of OpenLineage events against the vendored spec schemas.

The spec schemas under tests/fixtures/openlineage/ are verbatim copies of OpenLineage's public
JSON Schema files (Apache-2.0, github.com/OpenLineage/OpenLineage, spec/ and website/static/spec/),
each named after its `$id`. openlineage-python does not ship them. Where the exact version the
client stamps into `_schemaURL` is not vendored, `nearest_spec` validates against the newest
vendored version of the same document, preferring the same major version (SchemaVer: minor and
patch revisions only add optional fields); dropping in the exact file makes it take precedence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).parent / "fixtures" / "openlineage"
_SPEC_URL = re.compile(
    r"^https://openlineage\.io/spec/(?P<kind>facets/)?(?P<ver>\d+-\d+-\d+)/(?P<name>\w+)\.json$"
)


@lru_cache(maxsize=1)
def _vendored() -> dict[str, dict[str, Any]]:
    docs = (json.loads(p.read_text()) for p in sorted(SPEC_DIR.glob("*.json")))
    return {doc["$id"]: doc for doc in docs}


def nearest_spec(url: str) -> str:
    """`$id` of the vendored schema that validates the spec document at `url`."""
    base = url.partition("#")[0]
    docs = _vendored()
    if base in docs:
        return base
    wanted = _SPEC_URL.match(base)
    if wanted is None:
        raise LookupError(f"{url} is not an OpenLineage spec URL; there is no offline schema")
    candidates = []
    for doc_id in docs:
        have = _SPEC_URL.match(doc_id)
        if have and (have["kind"], have["name"]) == (wanted["kind"], wanted["name"]):
            candidates.append((tuple(map(int, have["ver"].split("-"))), doc_id))
    if not candidates:
        raise LookupError(f"no schema for {url}; add its spec file to {SPEC_DIR}")
    major = int(wanted["ver"].split("-")[0])
    same_major = [c for c in candidates if c[0][0] == major]
    # Across majors only as a last resort: the client stamps TagsRunFacet 1-0-0, the repo
    # publishes it as 2-0-3 with the same fields; facets use the core only for BaseFacet.
    return max(same_major or candidates)[1]


@lru_cache(maxsize=1)
def _registry() -> Registry:
    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(_vendored()[nearest_spec(uri)])

    resources = [(i, Resource.from_contents(doc)) for i, doc in _vendored().items()]
    return Registry(retrieve=retrieve).with_resources(resources)  # type: ignore[call-arg]


def _check(instance: Any, schema_url: str) -> None:
    Draft202012Validator(
        {"$ref": schema_url},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    ).validate(instance)


def facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from (event["run"].get("facets") or {}).items()
    yield from (event["job"].get("facets") or {}).items()
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for group in ("facets", "inputFacets", "outputFacets"):
            yield from (dataset.get(group) or {}).items()


def validate_event(event: dict[str, Any]) -> None:
    """Validate a RunEvent against OpenLineage.json and every facet against its own schema."""
    assert event["schemaURL"].endswith("/OpenLineage.json#/$defs/RunEvent"), event["schemaURL"]
    _check(event, event["schemaURL"])
    for key, facet in facets(event):
        _check(facet, facet["_schemaURL"])
        spec = _vendored()[nearest_spec(facet["_schemaURL"])]
        if key not in spec["properties"]:
            raise ValidationError(
                f"facet {key!r} is filed under the wrong key; spec: {spec['$id']}"
            )
