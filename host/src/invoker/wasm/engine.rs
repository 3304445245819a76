//! The wasmtime engine of a function, for core modules and for components alike: epoch
//! interruption and the pooling allocator sized for the function's instance slots, with
//! copy-on-write memory images and resident pages kept between instances, so that a fresh
//! instance costs microseconds. It knows nothing of how instances are run.

use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits};

const PAGE: usize = 64 * 1024;

/// What one instance slot of the pool must hold.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Instances alive at once (`INVOKER_COUNT`).
    pub slots: u32,
    /// Cap of each linear memory.
    pub memory_limit: usize,
    /// Per slot: core instances, memories and tables. A core module has one of each; a
    /// component made by componentize-py or jco links a dozen core modules.
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
    /// Per slot: fiber stacks (async calls in flight).
    pub stacks: u32,
    pub components: bool,
}

/// Core instances, memories and tables a slot admits for a component. componentize-py 0.25
/// output links 14 core modules, jco 1.34's 4, Rust's 3 (counted in the test components,
/// which instantiate within these limits); the rest is headroom, and costs address space
/// rather than RAM.
const COMPONENT_CORE_INSTANCES: u32 = 64;
const COMPONENT_MEMORIES: u32 = 8;
const COMPONENT_TABLES: u32 = 32;
/// Instance metadata of a large component (CPython or SpiderMonkey compiled to wasm has
/// tens of thousands of functions): the 1 MiB default refuses componentize-py's output.
const COMPONENT_INSTANCE_SIZE: usize = 16 << 20;
/// Table elements: an interpreter's indirect-call table outgrows the 20 000 default.
const COMPONENT_TABLE_ELEMENTS: usize = 200_000;

impl Pool {
    /// A pool for core modules: one instance, memory, table and stack per slot.
    pub fn modules(slots: u32, memory_limit: usize) -> Pool {
        Pool {
            slots,
            memory_limit,
            core_instances: 1,
            memories: 1,
            tables: 1,
            stacks: 1,
            components: false,
        }
    }

    /// A pool for components, sized for what language toolchains produce.
    pub fn components(slots: u32, memory_limit: usize) -> Pool {
        Pool {
            slots,
            memory_limit,
            core_instances: COMPONENT_CORE_INSTANCES,
            memories: COMPONENT_MEMORIES,
            tables: COMPONENT_TABLES,
            stacks: 1,
            components: true,
        }
    }

    /// The store limits matching a slot of this pool.
    pub fn store_limits(&self) -> StoreLimits {
        let b = wasmtime::StoreLimitsBuilder::new()
            .memory_size(self.memory_limit)
            .instances(self.core_instances as usize)
            .memories(self.memories as usize)
            .tables(self.tables as usize);
        match self.components {
            true => b.table_elements(COMPONENT_TABLE_ELEMENTS).build(),
            false => b.build(),
        }
    }

    fn config(&self) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::new();
        let n = self.slots;
        pool.total_core_instances(n * self.core_instances)
            .total_memories(n * self.memories)
            .total_tables(n * self.tables)
            .total_stacks(n * self.stacks)
            .max_memory_size(self.memory_limit.div_ceil(PAGE) * PAGE)
            .linear_memory_keep_resident(keep_resident())
            .table_keep_resident(64 * 1024)
            .pagemap_scan(match pagemap_reset() {
                true => wasmtime::Enabled::Auto,
                false => wasmtime::Enabled::No,
            });
        if self.components {
            pool.total_component_instances(n)
                .max_core_instances_per_component(self.core_instances)
                .max_memories_per_component(self.memories)
                .max_tables_per_component(self.tables)
                .max_core_instance_size(COMPONENT_INSTANCE_SIZE)
                .max_component_instance_size(COMPONENT_INSTANCE_SIZE)
                .table_elements(COMPONENT_TABLE_ELEMENTS);
        }
        pool
    }
}

/// How much of a linear memory a pool slot keeps mapped between instances. With
/// `pagemap_scan` (Linux >= 6.7) a reset restores only the pages the last instance dirtied,
/// so keeping 8 MiB resident lets a fresh instance handle a megabyte-sized event without a
/// page fault per 4 KiB (≈ 740 faults per 1 MB echo with 1 MiB kept: 1.5x the requests per
/// second with `WASM_ISOLATION=invocation`), for at most 8 MiB held per memory of a slot
/// once a large event dirtied it. Without `pagemap_scan` a reset zeroes the whole kept part,
/// so it stays at 1 MiB.
fn keep_resident() -> usize {
    match pagemap_reset() {
        true => 8 << 20,
        false => 1 << 20,
    }
}

/// Whether a slot's reset may ask `PAGEMAP_SCAN` which pages the last instance dirtied.
/// Not while swap is active: a dirtied page the kernel swapped out is neither present nor
/// file-backed, so the scan does not report it, the reset neither restores nor decommits
/// it, and the next instance in the slot (another invocation, another tenant) reads the
/// last one's data from swap. Without the scan every kept page is cleared and the rest
/// decommitted, which drops swapped pages too. Decided once per process, from
/// `/proc/swaps` (unreadable: assumed active); swap turned on after the start is not seen.
fn pagemap_reset() -> bool {
    static DECIDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DECIDED.get_or_init(|| {
        if !PoolingAllocationConfig::is_pagemap_scan_available() {
            return false;
        }
        let why = match std::fs::read_to_string("/proc/swaps") {
            Ok(swaps) if !swap_in_use(&swaps) => return true,
            Ok(_) => "swap is active".to_string(),
            Err(e) => format!("/proc/swaps is unreadable ({e}), so swap may be active"),
        };
        tracing::warn!(
            "{why}: wasm instance slots are reset without PAGEMAP_SCAN, which would miss \
             swapped-out pages (fresh instances are slower)"
        );
        false
    })
}

/// Whether `/proc/swaps` lists a swap area (its first line is the header).
fn swap_in_use(proc_swaps: &str) -> bool {
    proc_swaps.lines().skip(1).any(|l| !l.trim().is_empty())
}

/// The engine for `pool`; allocates on demand where the pooling allocator cannot reserve
/// its address space.
pub fn build(pool: Pool, perf_map: bool) -> anyhow::Result<Engine> {
    let mut cfg = wasmtime::Config::new();
    cfg.epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool.config()));
    if pool.components {
        cfg.wasm_component_model(true);
    }
    if perf_map {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    match Engine::new(&cfg) {
        Ok(e) => Ok(e),
        Err(e) => {
            tracing::warn!("pooling allocator unavailable ({e:#}); allocating on demand");
            cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&cfg).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e:#}"))
        }
    }
}

/// How long the start-up instantiation of [`check_fits`] may run guest code.
pub const START_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `instantiate` (one instance of the function in a fresh store whose deadline is
/// [`START_CHECK`] away) to its end at start-up, so that a component the pool cannot hold
/// (too many memories or core instances, too large an initial memory) stops the start with
/// a message rather than failing every invocation. Called on a blocking thread.
pub fn check_fits<T>(
    instantiate: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context("cannot check the component"))?;
    rt.block_on(instantiate)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context("bootstrap.wasm cannot be instantiated within the limits"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::swap_in_use;

    #[test]
    fn an_active_swap_area_is_seen_in_proc_swaps() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(!swap_in_use(header));
        assert!(!swap_in_use(""));
        let zram = format!("{header}/dev/zram0   partition\t4194300\t0\t100\n");
        assert!(swap_in_use(&zram));
        let file = format!("{header}/tmp/swapfile file 524284 0 -2\n");
        assert!(swap_in_use(&file));
    }
}
