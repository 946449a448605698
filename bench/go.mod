// The benchmark harness is its own module so that the peer libraries it
// measures wsgate against never become dependencies of the product.
module github.com/wsgate/wsgate/bench

go 1.26
