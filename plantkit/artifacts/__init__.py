"""Artifacts: where they live (layout), how they are written (protocol), who may write them
(locks) and how reads check them (integrity). Keras- and torch-free; see docs/artifacts.md."""

from plantkit.artifacts.errors import environment_error
from plantkit.artifacts.integrity import (
    ChecksumMismatch,
    read_verified,
    sha256_bytes,
    sha256_file,
    verify_file,
)
from plantkit.artifacts.layout import (
    ARTIFACTS_ENV,
    CACHE_DIR,
    CHECKPOINT_STATE_FILE,
    CHECKPOINT_WEIGHTS_FILE,
    CHECKPOINTS_DIR,
    COMBINATION_FILE,
    COMBOS_DIR,
    DATA_DIR,
    EPOCH_DIR_PREFIX,
    EXPERT_FILE,
    EXPERTS_DIR,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    HISTORY_TIMING_COLUMNS,
    KIND_FOLDERS,
    MEASURED_COST_FILE,
    REPORTS_DIR,
    ROUTER_GATE_FILE,
    RUNNABLE_ARRAYS_FILE,
    RUNNABLE_FILE,
    STORE_FILE,
    SYNTH_FILE,
    TRAIN_CONFIG_FILE,
    WEIGHTS_FILE,
    artifact_dir,
    artifacts_root,
    check_name,
    check_output_file,
    combo_dir,
    data_dir,
    expert_dir,
    find_stores,
    history_csv_text,
    is_visible,
    kind_folder,
    list_artifacts,
    read_history_rows,
    read_json,
    read_train_config,
    reports_dir,
    store_path,
)
from plantkit.artifacts.locks import ArtifactBusy, artifact_lock, holds_lock, set_wait
from plantkit.artifacts.protocol import (
    clean_leftovers,
    discard,
    fault_point,
    replacing_dir,
    replacing_file,
    write_bytes,
    write_text,
)

__all__ = [name for name in dir() if not name.startswith("_")]
