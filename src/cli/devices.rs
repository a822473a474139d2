//! `bnn devices`: every adapter wgpu sees, its limits and features, and the default one.

use bnn_transfer::gpu::describe_adapters;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let adapters = describe_adapters();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        anyhow::bail!(bnn_transfer::Error::NoAdapter {
            detail: String::new()
        });
    }
    for a in &adapters {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "{}{} ({} / {})",
            if a.is_default { "* " } else { "  " },
            a.name,
            a.backend,
            a.device_type
        );
        println!("    driver            {} {}", a.driver, a.driver_info);
        println!("    timestamp query   {}", a.timestamp_query);
        println!("    shader-f16        {}", a.shader_f16);
        println!(
            "    subgroups         {} (size {}..{})",
            a.subgroups, a.subgroup_size.0, a.subgroup_size.1
        );
        println!(
            "    storage binding   {:.0} MiB (buffer {:.0} MiB), {} per stage",
            mib(a.max_storage_buffer_binding_size),
            mib(a.max_buffer_size),
            a.max_storage_buffers_per_shader_stage
        );
        println!(
            "    workgroup         {} invocations, size {:?}, {} B shared, {} groups/dim",
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroup_size,
            a.max_compute_workgroup_storage_size,
            a.max_compute_workgroups_per_dimension
        );
    }
    println!("(* = default; choose with WGPU_BACKEND, WGPU_ADAPTER_NAME, WGPU_POWER_PREF)");
    Ok(())
}
