"""Every exit status of fmnist-dsl and of the generated scripts, each named once (README says what each means)."""

CHECK_FAILED = 1  # a check found what it looks for: lint findings, a stale build, a run that does not reproduce
BAD_INPUT = 2  # a spec, option or file that cannot be used: one line on stderr, nothing written
TRAINING_FAILED = 3  # training could not go on (a non-finite loss, data that does not read)
INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a process Ctrl-C ended
