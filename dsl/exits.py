"""Every exit status of fmnist-dsl and of the generated scripts, each named once (README says what each means)."""

CHECK_FAILED = 1  # a check found what it looks for: lint findings, a stale build, a run that does not reproduce
BAD_INPUT = 2  # a spec, option or file that cannot be used: one line on stderr, nothing written
TRAINING_FAILED = 1  # training diverged (a non-finite loss) or could not go on; data that does not read is BAD_INPUT
HUNG_UP = 129  # 128 + SIGHUP: the terminal closed; the run stopped as on Ctrl-C
INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a process Ctrl-C ended
TERMINATED = 143  # 128 + SIGTERM: timeout, a scheduler or a container stop; the run stopped as on Ctrl-C
