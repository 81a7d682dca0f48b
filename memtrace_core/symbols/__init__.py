"""Native symbols: module maps, the DWARF/ELF symbolizer, its worker process, and the
merge of native and Python stacks."""

from .hybrid import hybrid_stack
from .modmap import ModuleMap
from .resolver import IpResolver
from .symbolizer import Symbolizer
from .worker import SymbolizerWorker

__all__ = ["IpResolver", "ModuleMap", "Symbolizer", "SymbolizerWorker", "hybrid_stack"]
