"""``python -m probe.lab serve --workdir DIR [--world demo|bulk|catalogue] [--bulk-n N]``.

Runs a lab world in the foreground, writes ``DIR/world.json``, prints ``READY DIR/world.json``
(one line, flushed) once every socket is bound, and exits cleanly (status 0) on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import trio

from probe.lab import bulk_world, catalogue_world, demo_world, run_world
from probe.lab.world import WorldSpec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m probe.lab", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a lab world until SIGTERM/SIGINT")
    serve.add_argument("--workdir", type=Path, required=True, help="directory for world files")
    serve.add_argument("--world", choices=("demo", "bulk", "catalogue"), default="demo")
    serve.add_argument("--bulk-n", type=int, default=2000, help="sites of the bulk world")
    serve.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return p


def _spec(args: argparse.Namespace) -> WorldSpec:
    if args.world == "bulk":
        return bulk_world(args.bulk_n)
    if args.world == "catalogue":
        return catalogue_world()
    return demo_world()


async def serve(spec: WorldSpec, workdir: Path) -> None:
    """Run ``spec`` until SIGTERM or SIGINT."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with run_world(spec, workdir) as world:
            print(f"READY {world.world_json}", flush=True)
            async for _ in signals:
                break


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.bulk_n < 1:
        print("error: --bulk-n must be at least 1", file=sys.stderr)
        return 2
    try:
        trio.run(serve, _spec(args), args.workdir)
    except KeyboardInterrupt:  # before the signal handlers were installed
        return 130
    except (OSError, BaseExceptionGroup) as exc:
        errors = exc.split(OSError)[0] if isinstance(exc, BaseExceptionGroup) else exc
        if errors is None:
            raise
        while isinstance(errors, BaseExceptionGroup):
            errors = errors.exceptions[0]
        print(f"error: cannot start the lab world: {errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
