"""Source file the TUI tests point frames at (so the detail pane finds real lines)."""


def load_config(path):
    with open(path) as fh:
        return fh.read()


def parse_rows(text):
    return [line.split(",") for line in text.splitlines()]


def build_index(rows):
    return {row[0]: row for row in rows}


def main():
    rows = parse_rows(load_config("rows.csv"))
    return build_index(rows)


def worker_loop(queue):
    while True:
        item = queue.get()
        if item is None:
            break
