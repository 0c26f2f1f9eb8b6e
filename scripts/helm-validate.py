"""Validates every object of rendered Helm manifests (scripts/helm-check.sh runs it).

  python helm-validate.py --kube-version 1.33.0 --crd-dir DIR [--alerts FILE] [--dashboard FILE] MANIFEST...

- Kubernetes' own kinds: kubernetes-validate, strict (an unknown field fails), at --kube-version.
- Custom resources (ServiceMonitor, PrometheusRule, ScaledObject, ExternalSecret): the
  openAPIV3Schema of the CRD that the operator's project publishes (every *.yaml under --crd-dir),
  made strict the way the API server prunes: an object schema with properties and neither
  additionalProperties nor x-kubernetes-preserve-unknown-fields rejects other fields.
- A kind with no schema fails: nothing is let through unchecked.
- --alerts: every PrometheusRule's spec.groups must equal that file's groups exactly.
- --dashboard: every ConfigMap key named like that file must hold exactly its text.

Prints one line per object (failures only with --quiet-ok) and a count per manifest; exit 0 all valid, 1 otherwise.
"""

import argparse
import copy
import glob
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """The schema with additionalProperties: false wherever the API server would prune."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # metadata is ObjectMeta, checked by the API server itself; here: it must name the object.
    schema.setdefault("required", [])
    if "metadata" not in schema["required"]:
        schema["required"].append("metadata")
    return schema


def load_crds(crd_dir):
    """(apiVersion, kind) -> strict JSON schema, from every CRD under crd_dir."""
    schemas = {}
    for path in sorted(glob.glob(os.path.join(crd_dir, "**", "*.yaml"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema and version.get("served", True):
                        api_version = f"{spec['group']}/{version['name']}"
                        schemas[(api_version, spec["names"]["kind"])] = strict(schema)
    return schemas


def name_of(obj):
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def validate(obj, kube_version, crds):
    """A list of error texts; empty when obj is valid."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        validator = jsonschema.Draft7Validator(crds[key])
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
        return []
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} (neither Kubernetes {kube_version} nor a CRD)"]
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.absolute_path)) or "(root)"
        return [f"{path}: {error.message}"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("--crd-dir", required=True)
    parser.add_argument("--alerts")
    parser.add_argument("--dashboard")
    parser.add_argument("--quiet-ok", action="store_true", help="print failures only")
    parser.add_argument("manifests", nargs="+")
    args = parser.parse_args()

    crds = load_crds(args.crd_dir)
    alerts = None
    if args.alerts:
        with open(args.alerts, encoding="utf-8") as f:
            alerts = yaml.safe_load(f)["groups"]
    dashboard = None
    if args.dashboard:
        with open(args.dashboard, encoding="utf-8") as f:
            dashboard = (os.path.basename(args.dashboard), f.read())

    failed = 0
    for manifest in args.manifests:
        with open(manifest, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        if not objects:
            print(f"FAIL {manifest}: no objects rendered")
            failed += 1
        for obj in objects:
            errors = validate(obj, args.kube_version, crds)
            if alerts is not None and obj.get("kind") == "PrometheusRule":
                if obj.get("spec", {}).get("groups") != alerts:
                    errors.append(f"spec.groups differ from {args.alerts}'s groups")
            if dashboard is not None and obj.get("kind") == "ConfigMap":
                data = obj.get("data") or {}
                if dashboard[0] in data and data[dashboard[0]] != dashboard[1]:
                    errors.append(f"data.{dashboard[0]} differs from {args.dashboard}")
            if errors:
                failed += 1
                for error in errors:
                    print(f"FAIL {manifest}: {name_of(obj)}: {error}")
            elif not args.quiet_ok:
                print(f"ok   {manifest}: {name_of(obj)}")
        print(f"{manifest}: {len(objects)} object(s) checked")
    if failed:
        print(f"helm-validate: {failed} invalid object(s)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
