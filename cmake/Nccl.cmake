# Finds CUDA + NCCL for the NCCL communicator backend. The backend is compiled whenever the
# headers and library are present, even against a CPU-only LibTorch: it only needs the CUDA
# runtime and NCCL, and it is selected at run time when a GPU is visible.
set(ANGIOTRAIN_HAVE_NCCL OFF)
if(NOT ANGIOTRAIN_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS}
    PATH_SUFFIXES include)
  # NAMES_PER_DIR: a libnccl.so.2 in NCCL_ROOT (pip packages ship no libnccl.so) wins over a
  # system libnccl.so whose version may not match the header found there.
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR
    HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR}
    PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(ANGIOTRAIN_HAVE_NCCL ON)
    add_library(angiotrain_nccl INTERFACE)
    target_include_directories(angiotrain_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(angiotrain_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    message(STATUS "NCCL backend: ${NCCL_LIBRARY}")
  elseif(ANGIOTRAIN_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "ANGIOTRAIN_WITH_NCCL=ON but CUDA toolkit or NCCL was not found")
  else()
    message(STATUS "NCCL backend: not built (CUDA toolkit or nccl.h not found)")
  endif()
endif()
