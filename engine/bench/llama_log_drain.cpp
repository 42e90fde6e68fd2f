// Linked into the llama.cpp anchors by `make anchors` (engine/bench/anchors.py).
//
// llama.cpp's programs log through a worker thread and leave its queue to die with the process
// (llama.cpp issue 22142; log.h asks callers to flush before exit, and these two programs do not).
// On a busy machine the closing lines, the timings the bench reads, were lost: 1 run in 30 with two
// other busy processes on two cores, 3 in 4 with six. Draining the queue at exit keeps every line;
// nothing else in the programs changes.
#include "log.h"

#include <cstdlib>

namespace {

struct DrainLogAtExit {
    DrainLogAtExit() {
        // pause() prints what is queued, then stops the worker thread.
        std::atexit([] { common_log_pause(common_log_main()); });
    }
};

const DrainLogAtExit drain_log_at_exit;

}  // namespace
