#pragma once
// Write failures of HDF5's MPI-IO driver, seen by pref and never by HDF5 (docs/design.md,
// "Outputs are atomic").
//
// HDF5 1.10's MPI-IO driver takes its error path on the ranks whose write failed and only on
// them: those skip the collective calls that follow (the view reset of a collective write, the
// sync and size calls of a flush), the others wait in them for ever; and a file whose close
// failed stays half-closed until HDF5's own shutdown frees it a second time (a crash in
// MPI_Finalize). So this file interposes the MPI-IO calls that write (MPI's profiling
// interface: MPI_File_x calls PMPI_File_x), records the first failure of this rank, and tells
// HDF5 the call succeeded: HDF5 stays in step on every rank and closes the file normally. pref
// then asks take_failure() at its own agreement points (the end of every h5::write_rows, the
// flush and the close of h5::finish_file), so a failure on any rank is an IoError on every rank
// and the file, whose content is lost, is never renamed into place.
#include <mpi.h>

#include <string>

namespace pref::io::mpiio {

// The first failed MPI-IO write, sync, resize or close of this rank since the last call, as
// "<call>: <MPI error string>"; empty when there was none. Not collective.
std::string take_failure();

// The test seam (tests/pref_test_hooks.cpp, the test-only binary pref_test_hooks): called before
// each write of `bytes` bytes to a file opened for writing as `filename`; true makes the write
// count as failed with MPI_ERR_NO_SPACE, as on a full disk. (The bytes are still written: what
// is tested is that every rank learns of one rank's failure; a real full disk is tested on a
// tmpfs.) `pref` has the weak definition that returns false.
bool fail_write(const char* filename, long long bytes);

}  // namespace pref::io::mpiio
