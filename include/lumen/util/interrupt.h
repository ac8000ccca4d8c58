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

}  // namespace lumen
