/* CPU placement for the bench and the lab. */
#ifndef IPCX_TOOL_CPU_H
#define IPCX_TOOL_CPU_H

/* Pin the calling process to one CPU (cpu < 0: leave it). */
void cpu_pin(int cpu);

/* The CPUs this process may run on, in order, at most max of them.
 * Returns how many (0 if they cannot be read). */
int cpu_allowed(int *cpus, int max);

#endif
