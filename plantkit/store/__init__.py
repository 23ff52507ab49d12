"""The HDF5 prediction store: one file of logits, labels and paths per expert or combination.

The layout is documented in docs/store.md. Modules, one concern each:

- schema: format constants, names in the file, split order, fingerprints, the
  verification switch
- attrs: the codec of the writers' extra attributes
- chunks: chunking, fletcher32 and compaction of the datasets on disk
- split_writer: SplitWriter, one split filled batch by batch
- writer: StoreWriter, a whole store written through a temporary file
- reader: Store and open_store, every read verified
- compat: check_compatible
- classifier: Classifier, an expert's last linear layer kept beside its features

Integrity: logits, features, labels, train counts and the classifier carry HDF5's
per-chunk fletcher32 checksum (verified by HDF5 on every chunk read); paths and class ids,
variable-length strings that cannot carry a filter, carry a sha256 attribute verified when
they are read; labels are range-checked on read. A mismatch raises ChecksumMismatch (a
PlantkitInputError: one line naming the file, exit code 2). Stores written before these
checksums existed have none and are read as before.
"""

from __future__ import annotations

from plantkit.choices import LOGITS_DTYPES
from plantkit.store.classifier import Classifier
from plantkit.store.compat import check_compatible
from plantkit.store.reader import Store, open_store
from plantkit.store.schema import (
    CLASS_IDS_SHA256,
    FEATURES_DTYPE,
    PATHS_SHA256,
    SCHEMA_VERSION,
    SKIPPED_PATHS,
    SKIPPED_PATHS_SHA256,
    SPLIT_ORDER,
    STORE_FORMAT,
    classes_fingerprint,
    set_verification,
    strings_sha256,
)
from plantkit.store.split_writer import SplitWriter
from plantkit.store.writer import StoreDraft, StoreWriter

__all__ = [
    "CLASS_IDS_SHA256",
    "Classifier",
    "FEATURES_DTYPE",
    "LOGITS_DTYPES",
    "PATHS_SHA256",
    "SCHEMA_VERSION",
    "SKIPPED_PATHS",
    "SKIPPED_PATHS_SHA256",
    "SPLIT_ORDER",
    "STORE_FORMAT",
    "SplitWriter",
    "Store",
    "StoreDraft",
    "StoreWriter",
    "check_compatible",
    "classes_fingerprint",
    "open_store",
    "set_verification",
    "strings_sha256",
]
