#!/usr/bin/env python3
"""A consumer of handoff's events generated from proto/ by protobuf's own tooling.

It compiles proto/handoff/v1/*.proto with grpc_tools.protoc into a temporary directory and
parses every event of a dump with google.protobuf.json_format.Parse(...,
ignore_unknown_fields=False): what a team generating its consumer from the contract gets.
An event carrying a field proto/ does not define, or a value of the wrong shape, fails.

Usage: strict_consumer.py DUMP.jsonl [--expect-set handoff.v1.Message.field ...]

Each line of the dump is {"topic": ..., "ce_type": ..., "payload": "<the record payload>"}.
--expect-set names fields that must be set in at least one parsed event (so a run that never
produced them cannot pass as proof). Exits 0 when every event parses, 1 with the failing
event otherwise, 2 on usage or set-up errors. Installs tests/contract/requirements.txt when
protobuf or grpcio-tools is missing (CI machines start without them).
"""

import argparse
import importlib
import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"

# ce_type -> (module generated from proto/, message name); mirrors EventKind in
# crates/handoff-domain/src/events.rs and the table at the top of events.proto.
MESSAGES = {
    "io.handoff.lead.created.v1": ("handoff.v1.lead_pb2", "Lead"),
    "io.handoff.lead.assigned.v1": ("handoff.v1.events_pb2", "LeadAssigned"),
    "io.handoff.sla.breached.v1": ("handoff.v1.events_pb2", "SlaBreached"),
    "io.handoff.sla.reminder.v1": ("handoff.v1.events_pb2", "SlaReminder"),
    "io.handoff.lead.disposition.v1": ("handoff.v1.events_pb2", "LeadDisposition"),
    "io.handoff.rep.overrides.v1": ("handoff.v1.reps_pb2", "RepOverrides"),
}


def ensure_dependencies():
    try:
        importlib.import_module("google.protobuf.json_format")
        importlib.import_module("grpc_tools.protoc")
    except ImportError:
        requirements = HERE / "requirements.txt"
        print(f"installing {requirements}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)],
            check=True,
        )
        importlib.invalidate_caches()


def compile_contract(out_dir):
    """Generates Python modules from proto/ into out_dir and puts them on the path."""
    from grpc_tools import protoc

    well_known = pathlib.Path(protoc.__file__).resolve().parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed on {PROTO_ROOT}")
    sys.path.insert(0, str(out_dir))


def set_fields(message, seen):
    """Records every field set anywhere in message as 'full.MessageName.field'."""
    from google.protobuf.message import Message

    for field, value in message.ListFields():
        seen.add(f"{message.DESCRIPTOR.full_name}.{field.name}")
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            set_fields(value, seen)
        elif field.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    set_fields(item, seen)
        else:
            for item in value:
                set_fields(item, seen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=pathlib.Path)
    parser.add_argument("--expect-set", nargs="*", default=[])
    options = parser.parse_args()

    ensure_dependencies()
    from google.protobuf import json_format

    with tempfile.TemporaryDirectory() as out_dir:
        compile_contract(out_dir)
        classes = {
            ce_type: getattr(importlib.import_module(module), name)
            for ce_type, (module, name) in MESSAGES.items()
        }
        seen = set()
        counts = {}
        with options.dump.open(encoding="utf-8") as dump:
            for number, line in enumerate(dump, start=1):
                if not line.strip():
                    continue
                event = json.loads(line)
                ce_type = event.get("ce_type")
                cls = classes.get(ce_type)
                if cls is None:
                    print(f"line {number}: unknown ce_type {ce_type!r}", file=sys.stderr)
                    return 1
                try:
                    message = json_format.Parse(event["payload"], cls(), ignore_unknown_fields=False)
                except json_format.ParseError as error:
                    print(
                        f"line {number}: {cls.DESCRIPTOR.full_name} does not parse: {error}\n"
                        f"  topic: {event.get('topic')}\n  payload: {event['payload']}",
                        file=sys.stderr,
                    )
                    return 1
                set_fields(message, seen)
                counts[ce_type] = counts.get(ce_type, 0) + 1

    never_set = [field for field in options.expect_set if field not in seen]
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    print(f"parsed strictly: {summary or 'no events'}")
    if never_set:
        print(f"expected but never set: {', '.join(never_set)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
