// Cooperative interruption. InstallSignalHandlers() makes SIGINT and SIGTERM set a flag that
// long loops poll with Interrupted(); a second signal of either kind ends the process at once.
#pragma once

namespace lumen {

void InstallSignalHandlers();
bool Interrupted();
// The signal number that stopped us (0 if none).
int InterruptSignal();
// For tests and programmatic stops.
void RequestInterrupt();
void ResetInterrupt();
// Called (from the signal handler: it must be async-signal-safe) just before a second signal
// ends the process, e.g. to remove temporary files. nullptr: none.
void SetHardStopHook(void (*hook)());

}  // namespace lumen
