// An all-reduce (sum) that autograd can differentiate: forward sums the tensor over the ranks,
// backward sums the incoming gradients over the ranks, because every rank's loss depends on
// every rank's contribution. Synchronised BatchNorm (models/batch_norm.h) sums its statistics
// with it.
//
// Every rank calls it in the same order, with the same shape, in forward and (through autograd)
// in backward. Give it a communicator of its own, not the gradient reducer's: its collectives run
// inside forward and backward, interleaved with the reducer's bucket all-reduces in an order that
// only autograd decides, and collectives on one communicator must come in the same order on every
// rank (with NCCL each communicator also has its own stream, so the two cannot wait on each
// other). `comm` must outlive the graph's backward.
#pragma once

#include <torch/torch.h>

#include "distributed/communicator.h"

namespace angiotrain {

torch::Tensor AllReduceSumWithGradient(const torch::Tensor& local, Communicator& comm);

}  // namespace angiotrain
