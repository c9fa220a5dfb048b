"""The Ray Data engine: the same map stages and the same output as the local engine, on a cluster.

* Map stages: each batch (with the small state the driver learned preparing it, as the local
  engine sends to its workers) is one row of a Ray dataset; ``map_batches`` runs every stage on
  it in an actor pool (the stages are built once per actor) and returns the kept rows and each
  stage's rejects as Arrow IPC. The driver collects the results in order
  (``preserve_order``) into the same staging area as the local engine, so kept ids, reject
  reasons and shards are identical for the same seed.
* MinHash signatures are computed by the dedup sketch stage, inside ``map_batches``.
* LSH banding: the (band, key, row) triples go through a Ray Data ``groupby`` on (band, key
  range); each group finds its buckets with numpy and emits (first row, other row) pairs.
  Union-find on those edges (few) runs on the driver.
* Writing: every output shard is a Ray task (``curation.run.assemble.write_shard``) that reads its
  staged rows and writes its Parquet file; the driver only gathers their manifest entries.

``ray.init(address=...)`` joins an existing cluster (``ray start --head`` on the head node, then
``--ray-address <head>:6379``); without an address a local Ray starts with this machine's cores.
"""

from __future__ import annotations

import logging
import pickle
import time

import numpy as np
import pyarrow as pa

from curation.errors import CurationError
from curation.run.assemble import ShardTask, write_shard
from curation.run.engine import (
    _from_worker,
    collect_steps,
    from_ipc,
    run_batch,
    set_up_worker_process,
    to_ipc,
)
from curation.run.faults import crash_point
from curation.run.resources import peak_rss_mb
from curation.stages.base import Stage, StageCounts

log = logging.getLogger(__name__)

KEY_RANGE_BITS = 4  # 16 groups per band in the LSH group-by (a key's top bits): a bucket's rows share one


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise CurationError("--engine ray needs Ray Data: pip install 'ray[data]'") from None
    return ray


class _StageRunner:
    """A Ray actor's copy of the map stages (built once from their pickled form)."""

    def __init__(self, payload: bytes):
        set_up_worker_process()
        self.stages: list[Stage] = pickle.loads(payload)

    def __call__(self, block: pa.Table) -> pa.Table:
        results = []
        for data, state in zip(block["batch"].to_pylist(), block["states"].to_pylist(), strict=True):
            for stage, s in zip(self.stages, pickle.loads(state), strict=True):
                if s is not None:
                    stage.update_state(s)
            kept, steps = run_batch(self.stages, from_ipc(data))
            steps = [(name, to_ipc(rows_in), to_ipc(rej), secs) for name, rows_in, rej, secs in steps]
            results.append(pickle.dumps((to_ipc(kept), steps, peak_rss_mb())))
        return pa.table({"result": pa.array(results, pa.large_binary())})


def _bucket_pairs(group: pa.Table) -> pa.Table:
    """One (band, key range) group: for each bucket (equal key), pairs (first row, other row)."""
    key = group["key"].to_numpy()
    row = group["row"].to_numpy()
    order = np.lexsort((row, key))
    key, row = key[order], row[order]
    first = np.r_[True, key[1:] != key[:-1]]
    leader = row[first][np.cumsum(first) - 1]
    member = ~first
    return pa.table({"a": pa.array(leader[member]), "b": pa.array(row[member])})


class RayEngine:
    """``submit`` batches, ``finish`` maps them through Ray Data into the sink (see module doc)."""

    name = "ray"

    def __init__(self, stages: list[Stage], counts: StageCounts, sink, address: str | None = None):
        self.ray = _require_ray()
        self.stages, self.counts, self.sink = stages, counts, sink
        if not self.ray.is_initialized():
            kwargs = {"address": address} if address else {}
            self.ray.init(
                **kwargs,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
            )
            self._started = True
        else:
            self._started = False
        logging.getLogger("ray.data").setLevel(max(logging.WARNING, logging.getLogger().level))
        self.cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        counts.workers = self.cpus
        self.payload = pickle.dumps(stages)
        self.refs: list = []
        self.worker_peak_rss_mb = 0.0
        log.info("ray engine: %d CPUs in the cluster", self.cpus)

    def submit(self, batch: pa.Table) -> None:
        for stage in self.stages:
            stage.prepare(batch)
        states = pickle.dumps([stage.shared_state() for stage in self.stages])
        row = pa.table(
            {
                "batch": pa.array([to_ipc(batch)], pa.large_binary()),
                "states": pa.array([states], pa.large_binary()),
            }
        )
        self.refs.append(self.ray.put(row))

    def finish(self, empty: pa.Table):
        import ray.data

        start = time.perf_counter()
        if self.refs:
            ctx = ray.data.DataContext.get_current()
            ctx.execution_options.preserve_order = True
            ds = ray.data.from_arrow_refs(self.refs).map_batches(
                _StageRunner,
                fn_constructor_args=(self.payload,),
                batch_size=1,
                batch_format="pyarrow",
                concurrency=self.cpus,
                num_cpus=1,
            )
            for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for result in block["result"].to_pylist():
                    collect_steps(_from_worker(pickle.loads(result), self), self.sink, self.counts)
            self.refs = []
        if not self.sink.batches:  # no input at all: the column layout from an empty batch
            collect_steps(run_batch(self.stages, empty), self.sink, self.counts)
        wall = time.perf_counter() - start
        total = sum(self.counts.seconds[s.name] for s in self.stages) or 1.0
        for s in self.stages:  # summed over actors: report wall-clock shares
            self.counts.seconds[s.name] = self.counts.seconds[s.name] / total * wall
        return self.sink.result()

    def candidate_pairs(self, band_keys) -> np.ndarray:
        """LSH candidate pairs through a Ray Data group-by (same pairs as the local function)."""
        import ray.data

        refs, n = [], 0
        for band, keys in enumerate(band_keys):
            keys = np.asarray(keys, dtype=np.uint64)
            n = len(keys)
            part = (keys >> np.uint64(64 - KEY_RANGE_BITS)).astype(np.int64)
            table = pa.table(
                {
                    "band": np.full(n, band, np.int64),
                    "part": part,
                    "key": keys,
                    "row": np.arange(n, dtype=np.int64),
                }
            )
            refs.append(self.ray.put(table))
        if not refs or n == 0:
            return np.zeros((0, 2), dtype=np.int64)
        partitions = min(200, max(4, 2 * self.cpus))
        grouped = (
            ray.data.from_arrow_refs(refs)
            .groupby(["band", "part"], num_partitions=partitions)
            .map_groups(_bucket_pairs, batch_format="pyarrow")
        )
        codes = [
            b["a"].to_numpy() * n + b["b"].to_numpy()
            for b in grouped.iter_batches(batch_size=None, batch_format="pyarrow")
            if b.num_rows
        ]
        if not codes:
            return np.zeros((0, 2), dtype=np.int64)
        code = np.unique(np.concatenate(codes))
        return np.stack([code // n, code % n], axis=1)

    def write_shards(self, tasks: list[ShardTask], plan: pa.Table) -> list[tuple[dict, dict]]:
        """Each shard written by a Ray task (same bytes as the local engine's). Every task gets
        only the plan rows it needs; it reads the staged files and writes into the output folder,
        so on a multi-node cluster both must be on storage every node sees."""
        write = self.ray.remote(num_cpus=1)(write_shard)
        refs = []
        for task in tasks:
            local_task, sub_plan = task.localized(plan)
            refs.append(write.remote(local_task, sub_plan))
        results = []
        for ref in refs:  # in order, with the local engine's crash points
            results.append(self.ray.get(ref))
            crash_point(f"shard:{len(results)}")
        return results

    def close(self) -> None:
        self.refs = []

    def shutdown(self) -> None:
        if self._started:
            self.ray.shutdown()
