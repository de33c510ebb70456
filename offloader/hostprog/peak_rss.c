/* Linked into the reference program: at exit, write the process's peak resident set (VmHWM,
 * in bytes) to the file $OFFLOAD_PEAK_RSS_FILE names, if set. VmHWM belongs to the address
 * space exec made, so unlike getrusage it leaves out the forking parent's pages. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((destructor)) static void offload_write_peak_rss(void)
{
    const char *path = getenv("OFFLOAD_PEAK_RSS_FILE");
    if (!path)
        return;
    FILE *status = fopen("/proc/self/status", "r"), *out;
    char line[256];
    long long kib = -1;
    if (!status)
        return;
    while (fgets(line, sizeof line, status))
        if (sscanf(line, "VmHWM: %lld kB", &kib) == 1)
            break;
    fclose(status);
    if (kib >= 0 && (out = fopen(path, "w"))) {
        fprintf(out, "%lld\n", kib * 1024);
        fclose(out);
    }
}
