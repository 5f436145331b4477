//! Model families on smartcore (work in progress).
