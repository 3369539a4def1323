
shop:cart:http4

us-east1
us-east1-a


	10.1.0.45?4

us-east1
us-east1-b


	10.1.2.14?4

us-east1
us-east1-c


	10.1.4.52?