# Sourced by the comparison scripts: the machine a sitting ran on, for their JSON and logs.
cpu_model() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1; }
machine_json() {
  printf '{"cpu_model": "%s", "cores": %s, "kernel": "%s"}' "$(cpu_model)" "$(nproc)" "$(uname -r)"
}
