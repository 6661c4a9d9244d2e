// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package kut builds and describes the kvm-unit-tests suite and runs its
// x86 tests directly under QEMU's emulator (TCG), as the reference for
// the results big-iron's hypervisor gives for the same tests.
//
// The suite (GPL) is a test input only: this package unpacks and builds
// it (Build), reads its x86/unittests.cfg (ParseConfig), decides which of
// its tests apply to big-iron and why not (Applicable, Rules), writes the
// environment module a test reads instead of QEMU's fw_cfg (Env,
// EnvConfig), parses a test's serial output and exit status (ParseResult)
// and runs a test binary under QEMU (RunQEMU). None of the suite's code is
// copied here; the formats were learnt from its lib/report.c,
// lib/x86/fwcfg.c, lib/x86/setup.c, lib/argv.c, scripts/*.bash and x86/run.
//
// The tests that run QEMU are opt-in: TestRunQEMUReference with
// BIGIRON_E2E=1, TestReferenceTable (every applicable test, one at a
// time) with BIGIRON_KUT_TABLE=1. Both build the suite into
// BIGIRON_KUT_CACHE (default $HOME/.cache/bigiron-kut) from
// BIGIRON_KUT_ARCHIVE (default the archive in shared/suites beside the
// repository).
package kut
