"""Resource control through the kernel's cgroups."""
