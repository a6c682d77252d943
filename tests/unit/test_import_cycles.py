"""No module of the product imports itself back at run time (type-checking imports aside:
``core/texts`` names the services' view types for the type checker only)."""

from __future__ import annotations

import grimp
import pytest


@pytest.mark.parametrize("package", ["core", "bot", "webhook_server", "workers"])
def test_no_import_cycle_at_run_time(package: str) -> None:
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    cycles = sorted(
        f"{module} -> {imported} -> ... -> {module}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert cycles == []
