"""The ``ganrestore`` command line (sub-commands land with the command-line issue)."""
import argparse
import sys

from ._version import __version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ganrestore", description="Restore images by inverting pretrained GANs.")
    parser.add_argument("--version", action="version", version=f"ganrestore {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="degrade a built-in image and restore it")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print("demo: coming with the command-line issue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
