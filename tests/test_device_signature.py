"""Reading kernel signatures: the contract that both devices check launches against."""

import numpy as np
import pytest

from offloader.device import CompileError, CompileFailure
from offloader.device.signature import parse_kernels


def test_parameters_over_several_lines_with_qualifiers_and_launch_bounds():
    kernels = parse_kernels('''
// extern "C" __global__ void commented_out(int x);
extern "C" __global__ void __launch_bounds__(256, 2)
stencil(const double *__restrict__ in,
        double * __restrict__ out,   /* a comment, inside */
        const int n, unsigned long long count,
        size_t bytes, float alpha)
{ }
extern "C" __global__ void empty(void) { }
''')
    assert list(kernels) == ["stencil", "empty"]
    sig = kernels["stencil"]
    assert [p.name for p in sig.params] == ["in", "out", "n", "count", "bytes", "alpha"]
    assert [p.dtype for p in sig.params] == [None, None, np.int32, np.uint64, np.uint64, np.float32]
    assert sig.params[0].ctype == "double *" and sig.line == 3
    assert sig.letters == "ppiLLf"
    assert kernels["empty"].params == ()


def test_a_prototype_and_its_definition_are_one_kernel():
    kernels = parse_kernels('extern "C" __global__ void k(int *x);\n'
                            'extern "C" __global__ void k(int *x) { x[0] = 1; }\n')
    assert list(kernels) == ["k"]


@pytest.mark.parametrize("source, says", [
    ("__global__ void k(int *x) {}", 'extern "C"'),
    ('extern "C" __global__ void k(short s) {}', "short"),
    ('extern "C" __global__ void k(void (*f)(int)) {}', "cannot read"),
    ('extern "C" __global__ void k(int *x);\nextern "C" __global__ void k(float *x) {}', "twice"),
    ("__device__ int f(int x) { return x; }", "no `extern"),
])
def test_texts_outside_the_contract_are_refused(source, says):
    with pytest.raises(CompileError) as refused:
        parse_kernels(source)
    assert refused.value.code is CompileFailure.BAD_SIGNATURE and says in refused.value.message
