package sched

// DefaultBalanceModel is the learned balancer's model: for now the
// prior tools/balancetrain starts from. It spreads a vCPU from an
// overloaded node to one with a core free unless the source's memory is
// already shared across nodes, and gathers a vCPU with the memory it
// keeps fetching.
var DefaultBalanceModel = BalanceModel{
	Bias: -0.5,
	Weights: [NumBalanceFeatures]float64{
		BalanceSourceLoad: 1,
		BalanceDestLoad:   -1,
		BalancePull:       0.5,
		BalanceSettled:    0.5,
		BalanceBack:       -1,
		BalanceLink:       -0.3,
	},
}
