"""Terminal view of `plantkit classify` (plantkit.classify.classify_images's result)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_classification(result: dict, console: Console) -> None:
    """The table of `plantkit classify`: per image its top species and the experts that
    ran, then the measured cost next to the expected one."""
    table = Table(title=f"{result['name']} ({result['method']})")
    for column in ("image", "rank", "species id", "species", "probability", "experts"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("rank", "probability") else "left")
    for image in result["images"]:
        for entry in image["top"]:
            first = entry["rank"] == 1
            table.add_row(image["path"] if first else "", str(entry["rank"]),
                          entry["species_id"], entry["species_name"],
                          f"{entry['probability']:.4f}",
                          "+".join(image["experts"]) if first else "")
    console.print(table)
    console.print(_cost_line(result["cost"]), highlight=False, soft_wrap=True)


def _cost_line(cost: dict) -> str:
    def gflops(value) -> str:
        return "unknown" if value is None else f"{value:.4g}"

    rate = cost["images_per_s"]
    return (f"{cost['images']:,} images in {cost['wall_s']:.2f} s "
            f"({'-' if rate is None else f'{rate:.1f}'} images/s); GFLOPs per image: measured "
            f"{gflops(cost['measured_gflops_per_image'])}, expected "
            f"{gflops(cost['expected_gflops_per_image'])}")
