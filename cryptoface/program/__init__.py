"""The HE program format: the one contract between the compiler and the runtime.

Instructions, constants (lazy, or stored as sparse arrays), layouts, parameters, rotation
steps, the model's and the program's hashes, in a versioned file (`file.py`). A server runs
a program file with this package and `cryptoface.runtime` alone: nothing here imports the
compiler.
"""

from .constants import ConstantTable
from .file import FORMAT_VERSION, is_program_file, load_program, save_program
from .instructions import OPS, Instr, Section, rotated_name
from .layout import Layout, LayoutError
from .model import ModelRecord
from .program import HEProgram

__all__ = [
    "FORMAT_VERSION", "OPS", "ConstantTable", "HEProgram", "Instr", "Layout", "LayoutError", "ModelRecord",
    "Section", "is_program_file", "load_program", "rotated_name", "save_program",
]
