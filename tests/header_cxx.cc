// header_cxx.cc - clattn.h compiles as C++ and its symbols link with C linkage.
#include "clattn.h"

#include <cstring>

int main()
{
    clattn_attention_desc d = clattn_attention_desc();
    clattn_tensor t = clattn_tensor_make(nullptr, 0, CLATTN_F32, 1, 2, 3, 4);
    return std::strcmp(clattn_status_name(CLATTN_SUCCESS), "CLATTN_SUCCESS") != 0 || t.shape[3] != 4 || d.causal;
}
