"""Reads a run folder's TensorBoard event files with TensorBoard's own readers and prints what they hold:

    file <name> <first event's file_version> <records>
    scalar <tag> <step> <value>      (every scalar, as TensorBoard's EventAccumulator loads the folder)

The readers check each record's length and data CRCs; a damaged record would be missing here.
"""
import sys
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator, event_file_loader

folder = Path(sys.argv[1])
for path in sorted(folder.iterdir()):
    if "tfevents" in path.name:
        events = list(event_file_loader.EventFileLoader(str(path)).Load())
        first = events[0].file_version if events else "-"
        print("file", path.name, first or "-", len(events))

accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
accumulator.Reload()
for tag in sorted(accumulator.Tags()["scalars"]):
    for event in accumulator.Scalars(tag):
        print("scalar", tag, event.step, repr(event.value))
