// Second translation unit of the integration program: the other documented include,
// <fmi.h>, must work as well and link together with <Communicator.h> users.
#include <fmi.h>

int fmi_h_sum(int a, int b) { return FMI::Utils::Function<int>::sum()(a, b); }
