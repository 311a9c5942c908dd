"""Builds the kvtier package: generates the gRPC stubs from the repository's proto/ first.

The stubs are never checked in: `pip install ./client/python` runs grpc_tools.protoc over
proto/kvtier/v1/*.proto into kvtier/v1/ (the generated modules import each other as
kvtier.v1.*, which is this package's layout).
"""
import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"


class BuildWithStubs(build_py):
    def run(self):
        from grpc_tools import protoc  # a build requirement (pyproject.toml)
        import grpc_tools

        protos = sorted(str(p) for p in (PROTO_ROOT / "kvtier" / "v1").glob("*.proto"))
        if not protos:
            raise SystemExit(f"no .proto files under {PROTO_ROOT}: install from the repository")
        include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={HERE}",
                f"--grpc_python_out={HERE}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("grpc_tools.protoc failed on " + " ".join(protos))
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
