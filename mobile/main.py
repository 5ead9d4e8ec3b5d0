"""`gridwalk-handheld`: the handheld app on a desktop (development, demos, tests) or a device.

    gridwalk-handheld --server URL --data-dir DIR [--replay FILE.gpx] [--speed N]
                      [--fixed LAT,LON] [--lang zh_CN|en] [--user NAME]

With --user, the password comes from the GRIDWALK_PASSWORD environment variable and the app logs
in by itself (demos and kiosks); without it, the login screen asks.

Without --replay or --fixed, the platform GPS is used through plyer; a desktop has none, and the
app says so and still works (readings then carry no position and are flagged at the office).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common.i18n import LANGUAGES
from mobile.core.field import FieldSession
from mobile.core.location import (
    FixedSource,
    GpxReplaySource,
    LocationSource,
    PlyerSource,
    parse_fixed,
)

PASSWORD_ENV = "GRIDWALK_PASSWORD"  # noqa: S105 - the variable's name, not a password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gridwalk-handheld", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--server", default="", help="the Gridwalk server, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="where this handheld keeps its database and settings",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--replay", type=Path, help="play a GPX walk as the GPS")
    where.add_argument("--fixed", help="a fixed position LAT,LON as the GPS")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="replay N times faster than recorded"
    )
    parser.add_argument(
        "--lang",
        choices=list(LANGUAGES),
        help="the app's language, unless chosen in the app (default: the system's, else zh_CN)",
    )
    parser.add_argument(
        "--user",
        help=f"log in as NAME at start, with the password in {PASSWORD_ENV} (demos, kiosks)",
    )
    return parser.parse_args(argv)


def location_source(args: argparse.Namespace) -> LocationSource:
    if args.replay:
        return GpxReplaySource(args.replay, speed=args.speed)
    if args.fixed:
        lat, lon = parse_fixed(args.fixed)
        return FixedSource(lat, lon)
    return PlyerSource()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        source = location_source(args)
    except (ValueError, OSError) as exc:
        sys.exit(f"gridwalk-handheld: {exc}")
    try:
        # A first start on a fresh machine: the folder is made here, before Kivy needs it.
        (args.data_dir / "kivy").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        sys.exit(f"gridwalk-handheld: cannot use --data-dir {args.data_dir}: {exc.strerror}")
    # Kivy reads sys.argv itself unless told not to; its home goes under the data dir.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_HOME", str(args.data_dir / "kivy"))
    from mobile.ui.app import HandheldApp  # Kivy starts on import: after the environment

    autologin = None
    if args.user:
        password = os.environ.get(PASSWORD_ENV, "")
        if not password or not args.server:
            sys.exit(f"gridwalk-handheld: --user needs --server and the password in {PASSWORD_ENV}")
        autologin = (args.user, password)
    field = FieldSession(args.data_dir, source)
    HandheldApp(field, default_server=args.server, lang=args.lang, autologin=autologin).run()


if __name__ == "__main__":
    main()
