"""The hybrid layer's side of ``deploy``: checkpoints into artifacts, and real videos fed to
the runtime, the energy profiler and the hybrid-chip estimates."""
