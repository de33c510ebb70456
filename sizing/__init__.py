"""VM sizing: CPU size x vGPU slice with the best cost-performance (issue 5; not built yet)."""
