"""Contract compatibility: the ODCS and OpenAPI contracts of the working tree against a revision.

Both kinds are flattened into elements keyed by location (property path, endpoint, parameter,
response field); one comparison classifies each difference by `RULES`: breaking when something
consumers use disappears or changes type, or when data or a request valid under the old contract
may be refused by the new one. Breaking changes need a new major `version` (`info.version`).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from lakehouse.access import ACCESS_FILE
from lakehouse.config import get_settings
from lakehouse.contracts import CONTRACTS_DIR, DEFAULT_QUARANTINE_THRESHOLD, SUFFIX
from lakehouse.openapi import CONTRACT_FILE
from lakehouse.registry import DOMAIN_FILE

DEFAULT_BASE = "main"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# change kinds; {what} is the element: field, object, items, endpoint, parameter, response, ...
_SAFE = "contract added|{what} added|made optional|enum value added|enum dropped|limit widened|"
_SAFE += "constraint dropped"
_BREAKING = "contract removed|{what} removed|required {what} added|type changed|made required|"
_BREAKING += "enum value removed|enum introduced|limit narrowed|constraint added|constraint changed"
RULES = {**dict.fromkeys(_SAFE.split("|"), False), **dict.fromkeys(_BREAKING.split("|"), True)}

Limit = tuple[Any, bool, Any, bool]  # low, low inclusive, high, high inclusive; None: unbounded
UNBOUNDED: Limit = (None, True, None, True)
_RANGES = {"value": ("minimum", "maximum"), "length": ("minLength", "maxLength")}
_RANGES |= {"items": ("minItems", "maxItems")}
# quality operator -> (bounds the low side, bounds the high side, inclusive)
_OPERATORS = {"mustBe": (1, 1, 1), "mustBeLessThan": (0, 1, 0), "mustBeLessOrEqualTo": (0, 1, 1)}
_OPERATORS |= {"mustBeGreaterThan": (1, 0, 0), "mustBeGreaterOrEqualTo": (1, 0, 1)}
_CONSTRAINTS = ("format", "timezone", "pattern", "multipleOf", "uniqueItems")


class CompatError(ValueError):
    """A comparison that cannot run: names the file or revision, the field and the fix."""


@dataclass(frozen=True)
class Element:
    """One comparable piece of a contract: an object, property, endpoint, parameter or response."""

    what: str
    parent: str | None = None
    type: str = ""
    required: bool = False
    enum: tuple[Any, ...] | None = None
    limits: dict[str, Limit] = field(default_factory=dict)
    constraints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract and whether it breaks consumers."""

    location: str
    kind: str
    detail: str
    breaking: bool


@dataclass(frozen=True)
class ContractDiff:
    """The changes of one contract file, its two versions and who consumes the product."""

    path: str
    product: str
    old_version: str | None
    new_version: str | None
    major_bumped: bool  # the major version went up, which allows breaking changes
    changes: tuple[Change, ...]
    consumers: tuple[str, ...]

    @property
    def failures(self) -> list[Change]:
        """Breaking changes that no new major version covers."""
        return [c for c in self.changes if c.breaking and not self.major_bumped]

    def fix(self) -> str:
        """How to make this contract's breaking changes pass."""
        if self.new_version is None:
            return f"restore {self.path}; retire a contract only after its consumers have moved"
        major, key, where = _major(self.old_version), "version", self.path
        target = f"{major + 1}.0.0" if major is not None else "a new major"
        if not self.path.endswith(SUFFIX):
            key, domain = "info.version", PurePosixPath(self.path).parts[-3]
            where += f" and serve the changed endpoints under a new /{domain}/vN/ prefix"
        return f"raise {key} {self.old_version} to {target} in {where}, or undo the change"


@dataclass(frozen=True)
class CompatReport:
    """The classified changes of every contract file against one git revision."""

    against: str
    commit: str
    diffs: tuple[ContractDiff, ...]

    @property
    def ok(self) -> bool:
        """True when no breaking change lacks a new major version."""
        return not any(d.failures for d in self.diffs)

    def summary(self) -> list[str]:
        """Plain lines: the totals, each unversioned breaking change with its fix, the verdict."""
        changes = [c for d in self.diffs for c in d.changes]
        failures = [(d, c) for d in self.diffs for c in d.failures]
        breaking = sum(c.breaking for c in changes)
        lines = [
            f"compared {len(self.diffs)} contract files with {self.against} ({self.commit[:8]}): "
            f"{sum(bool(d.changes) for d in self.diffs)} changed; {len(changes) - breaking} safe "
            f"changes, {breaking - len(failures)} breaking with a new major version, "
            f"{len(failures)} breaking without"
        ]
        lines += [
            f"BREAKING {d.path}: {c.location}: {c.kind} ({c.detail}); consumers: "
            f"{', '.join(d.consumers) or 'none known'}; fix: {d.fix()}"
            for d, c in failures
        ]
        verdict = "FAILED" if failures else "ok"
        return [*lines, f"contracts check {verdict}: {len(failures)} unversioned breaking changes"]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data: every diff, the verdict and the summary lines."""
        return {**asdict(self), "ok": self.ok, "summary": self.summary()}


def _major(version: str | None) -> int | None:
    match = re.match(r"^\s*v?(\d+)", str(version)) if version is not None else None
    return int(match.group(1)) if match else None


def _change(rule: str, location: str, detail: str, what: str = "") -> Change:
    return Change(location, rule.format(what=what), detail, RULES[rule])


def _show(limit: Limit) -> str:
    low, low_in, high, high_in = limit
    if low is not None and low == high:
        return f"= {low}"
    parts = [f"{'≥' if low_in else '>'} {low}"] if low is not None else []
    parts += [f"{'≤' if high_in else '<'} {high}"] if high is not None else []
    return " and ".join(parts) or "unbounded"


def _side(old: tuple[Any, bool], new: tuple[Any, bool], lower: bool) -> int:
    """+1 when one bound of a limit got looser, -1 when tighter, 0 when equal."""
    if old == new or old[0] is None or new[0] is None:
        return 0 if old == new else 1 if new[0] is None else -1
    try:
        if old[0] == new[0]:
            return 1 if new[1] else -1
        return 1 if (new[0] < old[0]) == lower else -1
    except TypeError:  # bounds of different kinds (a date and a number) cannot be ordered
        return -1


def _compare_element(at: str, old: Element, new: Element) -> list[Change]:
    if old.type != new.type:
        return [_change("type changed", at, f"{old.type or 'any'} → {new.type or 'any'}")]
    changes = []
    if old.required != new.required:
        rule = "made required" if new.required else "made optional"
        changes.append(_change(rule, at, f"required: {old.required} → {new.required}".lower()))
    if (old.enum is None or new.enum is None) and old.enum != new.enum:
        rule = "enum dropped" if new.enum is None else "enum introduced"
        changes.append(_change(rule, at, ", ".join(map(str, old.enum or new.enum or ()))))
    elif old.enum is not None and new.enum is not None:
        gone = [str(v) for v in old.enum if v not in new.enum]
        added = [str(v) for v in new.enum if v not in old.enum]
        changes += [_change("enum value removed", at, ", ".join(gone))] if gone else []
        changes += [_change("enum value added", at, ", ".join(added))] if added else []
    for key in dict.fromkeys([*old.limits, *new.limits]):
        before, after = old.limits.get(key, UNBOUNDED), new.limits.get(key, UNBOUNDED)
        sides = {_side(before[:2], after[:2], True), _side(before[2:], after[2:], False)}
        if sides != {0}:
            rule = "limit narrowed" if -1 in sides else "limit widened"
            changes.append(_change(rule, at, f"{key}: {_show(before)} → {_show(after)}"))
    for key in dict.fromkeys([*old.constraints, *new.constraints]):
        was, now = old.constraints.get(key), new.constraints.get(key)
        if was != now:
            rule = "constraint " + ("dropped" if now is None else "changed" if was else "added")
            changes.append(_change(rule, at, f"{key}: {was or 'none'} → {now or 'none'}"))
    return changes


def compare(old: dict[str, Element], new: dict[str, Element]) -> list[Change]:
    """Every classified difference between two flattened contracts, in document order."""
    changes = []
    for at in dict.fromkeys([*new, *old]):
        before, after = old.get(at), new.get(at)
        if before is not None and after is not None:
            changes += _compare_element(at, before, after)
        elif after is not None and (after.parent is None or after.parent in old):
            rule = "required {what} added" if after.required else "{what} added"
            changes.append(_change(rule, at, after.type or after.what, after.what))
        elif before is not None and (before.parent is None or before.parent in new):
            changes.append(_change("{what} removed", at, before.type or before.what, before.what))
    return changes


def _bounds(node: dict[str, Any]) -> dict[str, Limit]:
    """Value, length and item-count limits of a JSON-schema-like node (OpenAPI 3.0 or 3.1)."""
    limits = {}
    for name, (least, most) in _RANGES.items():
        low, high, low_in, high_in = node.get(least), node.get(most), True, True
        if name == "value":  # 3.0 writes `exclusiveMinimum: true`, 3.1 and ODCS write the bound
            above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
            above = (low if above else None) if isinstance(above, bool) else above
            below = (high if below else None) if isinstance(below, bool) else below
            low, low_in = (above, False) if above is not None else (low, True)
            high, high_in = (below, False) if below is not None else (high, True)
        if (low, high) != (None, None):
            limits[name] = (low, low_in or low is None, high, high_in or high is None)
    return limits


def _quality(rules: Any) -> tuple[tuple[Any, ...] | None, dict[str, Limit], dict[str, str]]:
    """The valid values, thresholds and other checks that ODCS quality rules put on a property."""
    enum, limits, constraints, seen = None, {}, {}, {}
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict) or rule.get("type") == "text":
            continue
        name = str(rule.get("metric") or rule.get("rule") or rule.get("name") or rule.get("type"))
        seen[name] = seen.get(name, 0) + 1
        key = f"quality {name}" + (f" #{seen[name]}" if seen[name] > 1 else "")
        values = (rule.get("arguments") or {}).get("validValues")
        if isinstance(values, list):
            enum = tuple(values) if enum is None else tuple(v for v in enum if v in values)
        extras = ("mustNotBe", "mustNotBeBetween", "query", "implementation")
        constraints |= {f"{key} {x}": str(rule[x]) for x in extras if x in rule}
        bound, between = list(UNBOUNDED), rule.get("mustBeBetween")
        for operator, (low, high, inclusive) in _OPERATORS.items():
            if operator in rule:
                bound[0:2] = (rule[operator], bool(inclusive)) if low else bound[0:2]
                bound[2:4] = (rule[operator], bool(inclusive)) if high else bound[2:4]
        if isinstance(between, list) and len(between) == 2:
            bound = [between[0], True, between[1], True]
        if tuple(bound) != UNBOUNDED:
            limits[f"{key} ({rule.get('unit', 'rows')})"] = (*bound,)
    return enum, limits, constraints


def _odcs_walk(node: dict[str, Any], at: str, what: str, parent: str | None, out: dict) -> None:
    options = node.get("logicalTypeOptions") or {}
    enum, limits, constraints = _quality(node.get("quality"))
    constraints |= {key: str(options[key]) for key in _CONSTRAINTS if key in options}
    constraints |= {"unique": "true"} if node.get("unique") else {}
    props = [p for p in node.get("properties") or [] if isinstance(p, dict)]
    keys = {p.get("name"): p.get("primaryKeyPosition", 0) for p in props if p.get("primaryKey")}
    constraints |= {"primary key": ", ".join(map(str, sorted(keys, key=keys.get)))} if keys else {}
    kind = "/".join(str(node[k]) for k in ("logicalType", "physicalType") if node.get(k))
    limits, required = {**_bounds(options), **limits}, bool(node.get("required"))
    out[at] = Element(what, parent, kind, required, enum, limits, constraints)
    for prop in props:
        _odcs_walk(prop, f"{at}.{prop.get('name')}", "field", at, out)
    if isinstance(node.get("items"), dict):
        _odcs_walk(node["items"], f"{at}[]", "items", at, out)


def odcs_elements(raw: dict[str, Any]) -> dict[str, Element]:
    """An ODCS v3 contract flattened: its quarantine threshold, objects and property paths."""
    custom = {p.get("property"): p.get("value") for p in raw.get("customProperties") or []}
    share = (None, True, custom.get("quarantineThreshold", DEFAULT_QUARANTINE_THRESHOLD), True)
    at = "customProperties.quarantineThreshold"
    out = {at: Element("custom property", limits={"share": share})}
    for obj in (o for o in raw.get("schema") or [] if isinstance(o, dict)):
        _odcs_walk(obj, str(obj.get("name") or obj.get("physicalName")), "object", None, out)
    return out


def _type(node: dict[str, Any]) -> str:
    kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
    kind = "|".join(sorted(str(k) for k in kinds if k not in (None, "null")))
    kind = kind or ("object" if "properties" in node else "array" if "items" in node else "")
    return f"{kind}/{node['format']}" if node.get("format") else kind


class OpenAPIFlattener:
    """Flattens one OpenAPI 3 document: endpoints, parameters, request bodies, response fields."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc, self.out = doc, {}

    def ref(self, node: Any) -> Any:
        """The node with its local `$ref` followed (schemas, path items, parameters, bodies)."""
        for _ in range(64):  # a chain of refs; a longer one is a loop
            if not isinstance(node, dict) or "$ref" not in node:
                return node
            target, pointer = self.doc, str(node["$ref"])
            for part in pointer.removeprefix("#/").split("/"):
                target = target.get(part.replace("~1", "/")) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                raise CompatError(f"$ref {pointer}: not found; point it at #/components/...")
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        raise CompatError(f"$ref {node['$ref']}: refers to itself; point it at a real schema")

    def merged(self, schema: Any, seen: tuple[str, ...]) -> tuple[dict[str, Any], tuple]:
        """The schema with refs, allOf and nullable anyOf/oneOf folded in; the refs followed."""
        if not isinstance(schema, dict):
            return {}, seen
        if schema.get("$ref") in seen:  # a recursive schema: compare it by name only
            return {"type": f"recursive {schema['$ref'].rsplit('/', 1)[-1]}"}, seen
        seen, node = (*seen, schema["$ref"]) if "$ref" in schema else seen, self.ref(schema)
        for part in node.get("allOf") or []:
            sub, seen = self.merged(part, seen)
            required = [*node.get("required", []), *sub.get("required", [])]
            properties = {**sub.get("properties", {}), **node.get("properties", {})}
            node = {**sub, **node, "required": required, "properties": properties}
        branches = [self.merged(b, seen) for b in node.get("anyOf") or node.get("oneOf") or []]
        node = {k: v for k, v in node.items() if k not in ("allOf", "anyOf", "oneOf")}
        real = [b for b in branches if b[0].get("type") not in ("null", ["null"])]
        if len(real) == 1:
            return {**real[0][0], **node}, real[0][1]
        if real:
            node["type"] = f"anyOf({' | '.join(sorted(_type(b[0]) or 'any' for b in real))})"
        return node, seen

    def walk(self, schema: Any, place: tuple[str, str, str, bool], seen: tuple = ()) -> None:
        """Record a schema node at place (location, kind, parent, required), then its children."""
        (at, what, parent, required), (node, seen) = place, self.merged(schema, seen)
        enum = (node["const"],) if "const" in node else tuple(node.get("enum") or ()) or None
        checks = {k: str(node[k]) for k in _CONSTRAINTS[2:] if k in node}
        self.out[at] = Element(what, parent, _type(node), required, enum, _bounds(node), checks)
        needed = node.get("required") if isinstance(node.get("required"), list) else []
        for name, sub in (node.get("properties") or {}).items():
            self.walk(sub, (f"{at}.{name}", "field", at, name in needed), seen)
        if isinstance(node.get("items"), dict):
            self.walk(node["items"], (f"{at}[]", "items", at, False), seen)

    def body(self, holder: Any) -> Any:
        """The JSON schema of a parameter, body or response, preferring application/json."""
        content = (self.ref(holder) if isinstance(holder, dict) else {}).get("content") or {}
        media = content.get("application/json") or next(iter(content.values()), {})
        return media.get("schema") if isinstance(media, dict) else None

    def elements(self) -> dict[str, Element]:
        """Every endpoint with its parameters, request body and response fields."""
        for path, item in (self.doc.get("paths") or {}).items():
            item = self.ref(item)
            for method in (m for m in METHODS if isinstance(item.get(m), dict)):
                op, at = item[method], f"{method.upper()} {path}"
                self.out[at] = Element("endpoint")
                listed = [*(item.get("parameters") or []), *(op.get("parameters") or [])]
                params = {(p.get("in"), p.get("name")): p for p in map(self.ref, listed)}
                for (where, name), param in params.items():
                    needed = bool(param.get("required")) or where == "path"
                    schema = param.get("schema") or self.body(param)
                    self.walk(schema, (f"{at} {where} {name}", "parameter", at, needed))
                if (body := op.get("requestBody")) is not None:
                    needed = bool(self.ref(body).get("required"))
                    self.walk(self.body(body), (f"{at} request body", "request body", at, needed))
                for code, response in (op.get("responses") or {}).items():
                    self.walk(self.body(response), (f"{at} response {code}", "response", at, False))
        return self.out


def openapi_elements(doc: dict[str, Any]) -> dict[str, Element]:
    """An OpenAPI 3 document flattened: endpoints, parameters, bodies and response fields."""
    return OpenAPIFlattener(doc).elements()


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def _resolve(root: Path, against: str | None) -> tuple[str, str]:
    """The revision to compare with, as (how it was chosen, commit id)."""
    if against is None:
        base = _git(root, "merge-base", "HEAD", DEFAULT_BASE)
        if base.returncode == 0:
            return f"merge-base HEAD {DEFAULT_BASE}", base.stdout.strip()
        against = "HEAD"
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{against}^{{commit}}")
    if against.startswith("-") or found.returncode != 0:
        fix = "commit once" if against == "HEAD" else "pick one from `git log --oneline`"
        raise CompatError(f"--against {against}: no such commit in {root}; {fix}, e.g. main")
    return against, found.stdout.strip()


def _parse(text: str, shown: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if getattr(exc, "problem_mark", None) else ""
        raise CompatError(f"{shown}{line}: malformed YAML; fix indentation or quoting") from None
    if not isinstance(raw, dict):
        raise CompatError(f"{shown}: expected a mapping of keys; compare with another contract")
    return raw


def _consumers(folder: Path, root: Path) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Each domain's declared dependencies, and the (account, product) grants of access.yml."""
    dependencies = {}
    for path in sorted(folder.glob(f"*/{DOMAIN_FILE}")):
        shown = path.relative_to(root).as_posix()
        deps = _parse(path.read_text(encoding="utf-8"), shown).get("dependencies")
        dependencies[path.parent.name] = [str(d) for d in deps] if isinstance(deps, list) else []
    access, grants = folder / ACCESS_FILE, []
    shown = access.relative_to(root).as_posix()
    raw = _parse(access.read_text(encoding="utf-8"), shown) if access.is_file() else {}
    for index, grant in enumerate(raw.get("grants") or []):
        if not isinstance(grant, dict) or not grant.get("account") or not grant.get("product"):
            fix = "write e.g. '- {account: svc-bi, product: ventas.daily_revenue, ...}'"
            raise CompatError(f"{shown}: grants[{index}]: needs account and product; {fix}")
        grants.append((str(grant["account"]), str(grant["product"])))
    return dependencies, grants


def _diff(path: str, old: dict | None, new: dict | None, mesh: tuple) -> ContractDiff:
    """The classified changes of one contract file between two parsed versions (None: absent)."""
    latest, folder, (dependencies, grants) = new or old or {}, PurePosixPath(path).parts[-3], mesh
    if path.endswith(SUFFIX):
        first = (latest.get("schema") or [{}])[0]
        name = latest.get("dataProduct") or first.get("physicalName") or first.get("name")
        name = name or PurePosixPath(path).name.removesuffix(SUFFIX)
        product = f"{latest.get('domain') or folder}.{name}"
        users = [f"{d} (domain)" for d, deps in dependencies.items() if product in deps]
        users += [f"{a} (account)" for a, p in grants if p == product]
        flatten, versions = odcs_elements, [(r or {}).get("version") for r in (old, new)]
    else:
        product, flatten = f"{folder} API", openapi_elements
        users = [f"{a} (account)" for a, p in grants if p.startswith(f"{folder}.")]
        versions = [((r or {}).get("info") or {}).get("version") for r in (old, new)]
    if old is None or new is None:
        rule = "contract added" if old is None else "contract removed"
        changes = [_change(rule, "(file)", product)]
    else:
        try:
            changes = compare(flatten(old), flatten(new))
        except CompatError as exc:
            raise CompatError(f"{path}: {exc}") from None
    before, after = (None if v is None else str(v) for v in versions)
    low, high = _major(before), _major(after)
    bumped = low is not None and high is not None and high > low
    users = list(dict.fromkeys(users))  # an account granted several products counts once
    return ContractDiff(path, product, before, after, bumped, tuple(changes), tuple(users))


def check(domains_dir: Path | None = None, against: str | None = None) -> CompatReport:
    """Compare every contract under domains_dir with its version at git revision `against`."""
    folder = Path(domains_dir or get_settings().domains_dir).resolve()
    if not folder.is_dir():
        raise CompatError(f"{folder}: domains folder not found; set MESH_DOMAINS_DIR to it")
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise CompatError(f"{folder}: not in a git repository; run the check in a git clone")
    root = Path(top.stdout.strip()).resolve()
    label, commit = _resolve(root, against)
    prefix = folder.relative_to(root).as_posix()
    listed = _git(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", prefix).stdout
    here = [p.relative_to(root).as_posix() for p in folder.glob(f"*/{CONTRACTS_DIR}/*")]
    paths = {p for p in [*listed.split("\0"), *here] if _is_contract(p, prefix)}
    mesh, diffs = _consumers(folder, root), []
    for path in sorted(paths):
        blob = _git(root, "cat-file", "blob", f"{commit}:{path}")
        old = _parse(blob.stdout, f"{path} at {label}") if blob.returncode == 0 else None
        new = _parse((root / path).read_text(encoding="utf-8"), path) if path in here else None
        diffs.append(_diff(path, old, new, mesh))
    return CompatReport(label, commit, tuple(diffs))


def _is_contract(path: str, prefix: str) -> bool:
    parts = PurePosixPath(path).parts[len(PurePosixPath(prefix).parts) :]  # below domains/
    name = parts[-1] if len(parts) == 3 and parts[1] == CONTRACTS_DIR else ""
    return name.endswith(SUFFIX) or name == CONTRACT_FILE


def run_check(against: str | None, as_json: bool, console: Console) -> int:
    """`mesh contracts check`: print a Rich table and the summary (or JSON); the exit code."""
    report = check(against=against)
    if as_json:
        console.out(json.dumps(report.to_dict(), indent=2, default=str), highlight=False)
        return 0 if report.ok else 1
    table = Table(title=f"contract changes against {report.against} ({report.commit[:8]})")
    for column in ("contract", "location", "change", "detail", "verdict", "consumers"):
        table.add_column(column, overflow="fold")
    for diff in report.diffs:
        verdict = "[yellow]breaking, new major[/]" if diff.major_bumped else "[red]breaking[/]"
        for c in diff.changes:
            row = (c.location, c.kind, c.detail, verdict if c.breaking else "[green]safe[/]")
            table.add_row(diff.path, *row, ", ".join(diff.consumers) if c.breaking else "")
    if table.row_count:
        console.print(table)
    for line in report.summary():
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    return 0 if report.ok else 1
